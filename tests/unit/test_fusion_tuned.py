"""Tuned fusion kept in _meta: (de)serialisation beside the contract, and how a request takes it."""

from __future__ import annotations

import pytest

from es_semantic.schema.contract import META_KEY
from es_semantic.schema.tuning import (
    TUNING_KEY,
    RerankEvaluation,
    Tuning,
    tuning_from_mapping_response,
    with_tuning,
)
from es_semantic.search.request import SearchRequest
from es_semantic.search.tuned import apply_tuning, rerank_warning

RERANK = RerankEvaluation("bad-ce", "fp-bad", 0.2, -0.25, -0.31, -0.19, 0.004)
TUNED = Tuning(
    "weighted", alpha=0.7, metric="ndcg@10", before=0.70, after=0.72, queries="q.jsonl",
    qrels="test.tsv", digest="sha256:abc", date="2026-12-06T07:00:00Z", tuned_on=150,
    held_out=150, rerank=RERANK,
)  # fmt: skip


def test_tuning_round_trips_through_meta():
    assert Tuning.from_meta(TUNED.to_meta()) == TUNED
    rrf = Tuning("rrf", rank_constant=20)
    assert Tuning.from_meta(rrf.to_meta()) == rrf


def test_writing_tuning_keeps_the_contract_and_other_keys():
    meta = {META_KEY: {"model_name": "m", "dims": 3}, "owner": {"team": "search"}}
    written = with_tuning(meta, TUNED)
    assert written[META_KEY] == meta[META_KEY]
    assert written["owner"] == {"team": "search"}
    assert written[TUNING_KEY]["fusion"] == "weighted"
    again = with_tuning(written, Tuning("rrf", rank_constant=5))  # replaced, not merged
    assert again[TUNING_KEY]["rank_constant"] == 5 and again[TUNING_KEY]["rerank"] is None


@pytest.mark.parametrize(
    "stored",
    [None, "text", {"fusion": "magic"}, {"fusion": "weighted", "alpha": 3}, {"alpha": 0.5}],
)
def test_unreadable_tuning_is_ignored_not_fatal(stored):
    assert Tuning.from_meta({TUNING_KEY: stored}) is None


def test_tuning_of_an_alias_comes_from_the_first_index_that_has_one():
    body = {
        "b-2": {"mappings": {"_meta": TUNED.to_meta()}},
        "a-1": {"mappings": {"_meta": {}}},
    }
    assert tuning_from_mapping_response(body) == TUNED
    assert tuning_from_mapping_response({"a": {"mappings": {}}}) is None


def test_auto_takes_the_stored_fusion_and_a_named_one_overrides():
    auto = apply_tuning(SearchRequest("q"), TUNED)
    assert (auto.fusion, auto.alpha) == ("weighted", 0.7)
    named = apply_tuning(SearchRequest("q", fusion="rrf", rank_constant=30), TUNED)
    assert (named.fusion, named.rank_constant) == ("rrf", 30)
    rrf = apply_tuning(SearchRequest("q"), Tuning("rrf", rank_constant=20))
    assert (rrf.fusion, rrf.rank_constant) == ("auto", 20)  # server RRF still allowed
    adaptive = apply_tuning(SearchRequest("q"), Tuning("adaptive"))
    assert adaptive.fusion == "adaptive"
    assert apply_tuning(SearchRequest("q", mode="knn"), TUNED).fusion == "auto"


def test_auto_with_nothing_stored_fuses_keyword_and_knn_adaptively():
    assert apply_tuning(SearchRequest("q"), None) == SearchRequest("q", fusion="adaptive")
    named = SearchRequest("q", fusion="rrf")
    assert apply_tuning(named, None) == named
    for other in (SearchRequest("q", mode="knn"), SearchRequest("q", mode="keyword")):
        assert apply_tuning(other, None) == other
    # hybrids with the sparse leg: zscore (measured on SciFact and STS-en: above RRF)
    for legs in ("keyword,knn,sparse", "keyword,sparse", "knn,sparse"):
        assert apply_tuning(SearchRequest("q", legs=legs), None).fusion == "zscore"
    assert (
        apply_tuning(SearchRequest("q", legs="keyword,sparse", fusion="rrf"), None).fusion == "rrf"
    )
    assert apply_tuning(SearchRequest("q", legs="knn,keyword"), None).fusion == "adaptive"


def test_the_rerank_weight_is_taken_only_for_the_reranker_it_was_tuned_for():
    asked = SearchRequest("q", rerank=True)
    assert apply_tuning(asked, TUNED, "fp-bad").rerank_weight == 0.2
    assert apply_tuning(asked, TUNED, "fp-other").rerank_weight == 1.0
    assert apply_tuning(asked, None, "fp-bad").rerank_weight == 1.0
    given = SearchRequest("q", rerank=True, rerank_weight=0.9)
    assert apply_tuning(given, TUNED, "fp-bad").rerank_weight == 0.9


def test_a_warning_when_the_stored_evaluation_says_the_reranker_hurts():
    warning = rerank_warning(TUNED, "fp-bad")
    assert warning is not None and "bad-ce hurts" in warning and "-0.2500" in warning
    assert "\n" not in warning
    assert rerank_warning(TUNED, "fp-other") is None
    helps = Tuning("rrf", rerank=RerankEvaluation("ce", "fp", 1.0, 0.05, 0.02, 0.08, 0.05))
    assert rerank_warning(helps, "fp") is None


def test_rerank_weight_is_validated():
    from es_semantic.errors import InputError

    with pytest.raises(InputError, match=r"rerank_weight=1\.5"):
        SearchRequest("q", rerank_weight=1.5)


def test_summary_names_the_setting_the_data_and_the_gain():
    line = TUNED.summary()
    assert "weighted alpha=0.7" in line and "0.7000 -> 0.7200" in line
    assert "q.jsonl" in line and "test.tsv" in line and "weight 0.2" in line


@pytest.mark.parametrize(("kept", "said"), [
    (0.7382, "0.7382: +0.0466 over the best leg (keyword)"),
    (0.6886, "0.6886: -0.0030 under the best leg (keyword), within 0.005"),
    (0.6766, "0.6766: -0.0150 under the best leg (keyword), NOT within 0.005"),
])  # fmt: skip
def test_the_legs_line_says_how_far_the_kept_fusion_is_from_the_best_leg(kept: float,
                                                                        said: str) -> None:  # fmt: skip
    from es_semantic.evaluation.tuned_report import _legs_line
    from es_semantic.evaluation.tuning import TuneResult

    chosen = TuneResult("weighted", 0.5, 0.7367, kept, 0.7312, "ndcg@10")
    line = _legs_line({"keyword": 0.6916, "knn": 0.6550}, chosen)
    assert line.endswith(f"weighted (kept) {said}"), line


def test_a_stored_zscore_fusion_is_taken_with_its_alpha():
    stored = Tuning("zscore", alpha=0.4)
    assert Tuning.from_meta(stored.to_meta()) == stored
    auto = apply_tuning(SearchRequest("q", legs="keyword,knn,sparse"), stored)
    assert (auto.fusion, auto.alpha) == ("zscore", 0.4)
    assert "zscore alpha=0.4" in stored.summary()


def test_the_default_eval_tunes_against_is_the_one_a_search_runs():
    from es_semantic.evaluation.runner import LegRuns, fused_mode
    from es_semantic.evaluation.tuning import TuneResult, default_setting, tuned_run
    from es_semantic.search.fusion import LegHit

    legs = LegRuns()
    for leg, scores in {"keyword": (9.0, 5.0, 1.0), "knn": (0.9, 0.8, 0.1),
                        "sparse": (4.0, 3.9, 0.2)}.items():  # fmt: skip
        legs.hits[leg] = {"q": [LegHit(d, s) for d, s in zip(("a", "b", "c"), scores, strict=True)]}
        legs.ms[leg] = {"q": 0.0}
    assert default_setting(legs) == ("zscore", 0.5)
    method, setting = default_setting(legs)
    run = tuned_run(legs, TuneResult(method, setting, 0.0, 0.0, 0.0, "ndcg@10"))
    assert run.scores == fused_mode(legs, "zscore", alpha=0.5).scores
