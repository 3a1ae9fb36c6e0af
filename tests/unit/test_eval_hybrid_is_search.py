"""eval's ``hybrid`` is what a hybrid search of the index returns: the same fusion rule
(``search.tuned.apply_tuning``), with the index's stored tuning or, with nothing stored, the
default (adaptive for keyword + kNN, RRF with the sparse leg); ``--tune`` compares against it."""

from __future__ import annotations

from typing import Any

from es_semantic.evaluation.runner import LegRuns, build_modes, fused_mode
from es_semantic.evaluation.tuning import tune
from es_semantic.schema.tuning import Tuning
from es_semantic.search.fusion import LegHit

QUERIES = [f"q{i}" for i in range(8)]


def _legs(with_sparse: bool = False) -> LegRuns:
    """Per query: a confident keyword leg (one clear top score) and a flat kNN leg that
    disagrees, so RRF and adaptive fusion order the documents differently."""
    runs = LegRuns()
    lists = {
        "keyword": [("a", 30.0), ("b", 5.0), ("c", 4.9), ("d", 4.8)],
        "knn": [("d", 0.71), ("c", 0.70), ("e", 0.70), ("b", 0.69)],
    }
    if with_sparse:
        lists["sparse"] = [("e", 3.0), ("d", 2.0)]
    for leg, hits in lists.items():
        runs.hits[leg] = {q: [LegHit(d, s) for d, s in hits] for q in QUERIES}
        runs.ms[leg] = dict.fromkeys(QUERIES, 1.0)
    return runs


def _modes(modes: list[str], legs: LegRuns, tuning: Tuning | None = None) -> dict[str, Any]:
    searcher: Any = None  # no server-rrf mode: nothing is sent
    runs = build_modes(modes, legs, dict.fromkeys(QUERIES, "x"), searcher=searcher, tuning=tuning)
    return {mode: run.ranked["q0"] for mode, run in runs.items()}


def test_hybrid_with_nothing_stored_is_the_searchs_default() -> None:
    ranked = _modes(["hybrid", "adaptive", "rrf"], _legs())
    assert ranked["adaptive"] != ranked["rrf"]  # the legs tell the two fusions apart
    assert ranked["hybrid"] == ranked["adaptive"]


def test_hybrid_with_the_sparse_leg_and_nothing_stored_is_zscore() -> None:
    ranked = _modes(["hybrid", "rrf", "zscore", "hybrid:keyword+knn"], _legs(True))
    assert ranked["rrf"] != ranked["zscore"]
    assert ranked["hybrid"] == ranked["zscore"]
    assert ranked["hybrid:keyword+knn"] == _modes(["adaptive"], _legs())["adaptive"]


def test_hybrid_uses_the_stored_tuning() -> None:
    knn_only = Tuning(fusion="weighted", alpha=1.0)
    ranked = _modes(["hybrid", "knn"], _legs(), knn_only)
    assert ranked["hybrid"][:4] == ranked["knn"]
    sharp = Tuning(fusion="rrf", rank_constant=1)
    expected = fused_mode(_legs(), "rrf", rank_constant=1).ranked["q0"]
    assert _modes(["hybrid"], _legs(), sharp)["hybrid"] == expected


def test_tune_compares_against_the_default_a_search_runs() -> None:
    legs = _legs()
    qrels = {q: {"d": 1} for q in QUERIES}  # the kNN leg's first hit is the relevant one
    results = tune(legs, qrels, qrels)
    adaptive = next(r for r in results if r.method == "adaptive")
    rrf_60 = fused_mode(legs, "rrf", rank_constant=60).ranked
    assert rrf_60["q0"] != fused_mode(legs, "adaptive").ranked["q0"]
    assert all(r.default_held_out == adaptive.held_out_score for r in results)
