import math

import pytest

from es_semantic.search.fusion import LegHit, fuse_legs, min_max, rrf, std_scaled, weighted

KW = [LegHit("a", 10.0), LegHit("b", 8.0), LegHit("c", 2.0)]
KNN = [LegHit("c", 0.9), LegHit("d", 0.8), LegHit("a", 0.7)]


def test_rrf_hand_computed():
    out = rrf({"keyword": KW, "knn": KNN}, rank_constant=60)
    scores = {f.id: f.score for f in out}
    assert scores["a"] == pytest.approx(1 / 61 + 1 / 63)
    assert scores["c"] == pytest.approx(1 / 63 + 1 / 61)
    assert scores["b"] == pytest.approx(1 / 62)
    assert scores["d"] == pytest.approx(1 / 62)
    # a and c tie: the keyword leg (listed first) breaks it; b and d tie likewise
    assert [f.id for f in out] == ["a", "c", "b", "d"]
    assert out[0].ranks == {"keyword": 1, "knn": 3} and out[0].scores == {
        "keyword": 10.0,
        "knn": 0.7,
    }


def test_rrf_missing_leg_and_window():
    out = rrf({"keyword": KW, "knn": []})
    assert [f.id for f in out] == ["a", "b", "c"]
    assert [f.id for f in rrf({"keyword": KW, "knn": KNN}, window=1)] == ["a", "c"]


def test_duplicates_within_a_leg_keep_best_rank():
    out = rrf({"keyword": [LegHit("a", 3), LegHit("a", 2), LegHit("b", 1)]}, rank_constant=1)
    assert [(f.id, f.ranks["keyword"]) for f in out] == [("a", 1), ("b", 2)]


def test_min_max():
    assert min_max([2.0, 4.0, 3.0]) == [0.0, 1.0, 0.5]
    assert min_max([5.0, 5.0]) == [1.0, 1.0]
    assert min_max([]) == []


def test_weighted_hand_computed():
    out = weighted({"keyword": KW, "knn": KNN}, {"keyword": 0.5, "knn": 0.5})
    scores = {f.id: round(f.score, 6) for f in out}
    # keyword min-max: a 1, b .75, c 0; knn: c 1, d .5, a 0
    assert scores == {"a": 0.5, "b": 0.375, "c": 0.5, "d": 0.25}


@pytest.mark.parametrize(("alpha", "leg"), [(1.0, KNN), (0.0, KW)])
def test_weights_zero_and_one_equal_single_legs(alpha, leg):
    out = weighted({"keyword": KW, "knn": KNN}, {"knn": alpha, "keyword": 1 - alpha})
    assert [f.id for f in out] == [h.id for h in leg]


def test_weighted_ties_are_deterministic():
    legs = {
        "keyword": [LegHit("x", 1.0), LegHit("y", 1.0)],
        "knn": [LegHit("y", 1.0), LegHit("x", 1.0)],
    }
    first = [f.id for f in weighted(legs, {"keyword": 0.5, "knn": 0.5})]
    assert first == [f.id for f in weighted(legs, {"keyword": 0.5, "knn": 0.5})] == ["x", "y"]


def test_bad_parameters():
    with pytest.raises(ValueError):
        rrf({"a": KW}, rank_constant=0)
    with pytest.raises(ValueError):
        weighted({"a": KW}, {"a": -1})


def test_std_scaled_divides_by_the_spread_of_the_whole_list_not_its_range():
    # min-max gives the top hit 1.0 whatever the rest; std-scaling rewards a top hit that
    # stands out from a leg's other hits
    assert std_scaled([3.0, 1.0, 1.0, 1.0]) == pytest.approx([2.0 / math.sqrt(0.75), 0, 0, 0])
    assert std_scaled([5.0, 5.0]) == [1.0, 1.0]
    assert std_scaled([]) == []


def test_zscore_fusion_hand_computed_and_unlike_min_max():
    # keyword: one hit far above the rest (BM25's heavy head); knn: evenly spaced scores
    keyword = [LegHit("a", 10.0)] + [LegHit(f"k{i}", 2.0 - 0.1 * i) for i in range(9)]
    knn = [LegHit("b", 0.9)] + [LegHit(f"n{i}", 0.85 - 0.05 * i) for i in range(9)]
    legs = {"keyword": keyword, "knn": knn}
    fused = fuse_legs("zscore", legs, alpha=0.55)
    mean = sum(h.score for h in keyword) / 10
    std = math.sqrt(sum((h.score - mean) ** 2 for h in keyword) / 10)
    scores = {f.id: f.score for f in fused}
    assert scores["a"] == pytest.approx(0.45 * (10.0 - 1.2) / std)
    assert scores["n8"] == pytest.approx(0.0)  # the knn leg's last hit: its floor
    # min-max gives a 1.0 like any top hit, so knn's second hit n0 beats it; scaled by the
    # spread of its leg, a's lead over the other keyword hits counts
    assert [f.id for f in fuse_legs("weighted", legs, alpha=0.55)][:3] == ["b", "n0", "a"]
    assert [f.id for f in fused][:3] == ["b", "a", "n0"]


@pytest.mark.parametrize(("alpha", "leg"), [(1.0, KNN), (0.0, KW)])
def test_zscore_weights_zero_and_one_equal_single_legs(alpha, leg):
    out = fuse_legs("zscore", {"keyword": KW, "knn": KNN}, alpha=alpha)
    assert [f.id for f in out] == [h.id for h in leg]


def test_std_scaled_gives_a_flat_list_one_like_min_max_despite_rounding():
    # the mean of three 0.1s is not exactly 0.1 in floating point: the std is not exactly 0
    assert std_scaled([0.1, 0.1, 0.1]) == [1.0, 1.0, 1.0] == min_max([0.1, 0.1, 0.1])
    flat = {
        "keyword": [LegHit(i, 0.1) for i in "abc"],
        "knn": [LegHit("d", 0.9), LegHit("a", 0.5), LegHit("e", 0.1)],
    }
    scores = {f.id: f.score for f in fuse_legs("zscore", flat, alpha=0.5)}
    # the flat keyword leg still counts for the hits it found (1.0 each, not 0)
    assert scores["a"] == pytest.approx(0.5 * 1.0 + 0.5 * 0.4 / math.sqrt(0.32 / 3))
    assert scores["b"] == pytest.approx(0.5)
