"""``eval --tune``'s guard that fusion never loses to its best leg: a fusion is stored only when
its gain over the best single leg on the tuning queries is clear (paired bootstrap interval above
0); otherwise the leg itself is kept as weighted fusion giving it every weight."""

from __future__ import annotations

from es_semantic.evaluation.metrics import evaluate
from es_semantic.evaluation.runner import LegRuns
from es_semantic.evaluation.tuning import (
    TuneResult,
    best_fusion,
    fusion_or_best_leg,
    split_queries,
    tune,
    tuned_or_default,
    tuned_run,
)
from es_semantic.search.fusion import LegHit


def _legs(
    queries: int, keyword_right: set[int], knn_right: set[int]
) -> tuple[LegRuns, dict[str, dict[str, int]]]:
    """Each query has one relevant document ``q-rel``; a leg that is "right" ranks it first,
    otherwise second (behind a wrong document of its own)."""
    legs, qrels = LegRuns(), {}
    for i in range(queries):
        q = f"q{i}"
        qrels[q] = {f"{q}-rel": 1}
        for leg, right, top in (("keyword", keyword_right, 9.0), ("knn", knn_right, 0.9)):
            ids = [f"{q}-rel", f"{q}-{leg}"] if i in right else [f"{q}-{leg}", f"{q}-rel"]
            hits = [LegHit(d, top - 0.1 * j) for j, d in enumerate(ids)]
            hits += [LegHit(f"{q}-{leg}{j}", top - 0.1 * (j + 2)) for j in range(8)]
            legs.hits.setdefault(leg, {})[q] = hits
    legs.ms = {leg: dict.fromkeys(qrels, 1.0) for leg in legs.hits}
    return legs, qrels


def _guard(legs: LegRuns, qrels: dict[str, dict[str, int]]):  # type: ignore[no-untyped-def]
    tune_q, test_q = split_queries(qrels)
    fused = best_fusion(tune(legs, tune_q, test_q))
    kept, leg, gain = fusion_or_best_leg(legs, fused, tune_q, test_q)
    return fused, kept, leg, gain, tune_q


def test_a_fusion_ahead_by_chance_gives_way_to_the_best_leg() -> None:
    """kNN is right on every query but one, where only keyword is: fusion wins that one query
    on the tuning half (a gain the interval does not confirm); kNN alone is kept."""
    n = 40
    legs, qrels = _legs(n, keyword_right=set(), knn_right=set(range(n)))
    tune_q, _ = split_queries(qrels)
    lucky = int(sorted(tune_q)[0][1:])  # one tuning query where only keyword is right
    legs, qrels = _legs(n, keyword_right={lucky}, knn_right=set(range(n)) - {lucky})
    fused, kept, leg, gain, tune_q = _guard(legs, qrels)
    knn_alone = {q: [h.id for h in hits] for q, hits in legs.hits["knn"].items()}
    assert fused.tuned_score > evaluate(knn_alone, tune_q, ["ndcg@10"])["ndcg@10"]  # by chance
    assert leg == "knn" and not gain.helps
    assert (kept.method, kept.setting) == ("weighted", 1.0)


def test_a_fusion_clearly_ahead_is_kept() -> None:
    """Each leg is right on half the queries: fusion is clearly ahead of either leg."""
    n = 60
    legs, qrels = _legs(n, keyword_right=set(range(0, n, 2)), knn_right=set(range(1, n, 2)))
    fused, kept, _leg, gain, _ = _guard(legs, qrels)
    assert gain.helps
    assert kept is fused


def _tuned(method: str, setting: float) -> TuneResult:
    return TuneResult(method, setting, 0.0, 0.0, 0.0, "ndcg@10")


def test_a_tuned_setting_no_clearer_than_the_default_gives_way_to_it() -> None:
    """Two legs that agree: every fusion ranks alike, so a tuned weighted 0.3 is no better
    than the default a search runs with nothing stored (adaptive), which is kept."""
    legs, qrels = _legs(40, keyword_right=set(range(40)), knn_right=set(range(40)))
    tune_q, test_q = split_queries(qrels)
    kept, gain = tuned_or_default(legs, _tuned("weighted", 0.3), tune_q, test_q)
    assert not gain.helps and kept.method == "adaptive"


def test_a_tuned_setting_clearly_ahead_of_the_default_is_kept() -> None:
    """The keyword leg is sure of itself and wrong (a far higher top score), kNN is flat and
    right: adaptive trusts keyword, weighted alpha 1 (kNN) is clearly ahead and kept."""
    legs, qrels = _legs(40, keyword_right=set(), knn_right=set(range(40)))
    for q, hits in legs.hits["keyword"].items():
        legs.hits["keyword"][q] = [LegHit(hits[0].id, 90.0), *hits[1:]]
    tune_q, test_q = split_queries(qrels)
    adaptive = evaluate(tuned_run(legs, _tuned("adaptive", 0.0)).ranked, tune_q, ["ndcg@10"])
    assert adaptive["ndcg@10"] < 0.9  # the precondition: the default misses here
    kept, gain = tuned_or_default(legs, _tuned("weighted", 1.0), tune_q, test_q)
    assert gain.helps and (kept.method, kept.setting) == ("weighted", 1.0)
