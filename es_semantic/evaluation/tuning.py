"""Sweep hybrid settings on tuning queries, report on held-out ones (pure over leg runs)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from es_semantic.evaluation.metrics import Qrels, evaluate, per_query
from es_semantic.evaluation.runner import (
    LegRuns,
    ModeRun,
    RerankScores,
    blended_mode,
    fused_mode,
    hybrid_fusion,
)
from es_semantic.evaluation.significance import Gain, paired_bootstrap
from es_semantic.search.fusion import ALPHA_FUSIONS

ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
RANK_CONSTANTS = (1, 5, 10, 20, 40, 60, 100)
RERANK_WEIGHTS = tuple(round(0.1 * i, 1) for i in range(11))


def split_queries(
    qrels: Qrels, tune_fraction: float = 0.5
) -> tuple[dict[str, dict[str, int]], dict[str, dict[str, int]]]:
    """Deterministic split by a hash of the query id: (tuning qrels, held-out qrels)."""
    tune: dict[str, dict[str, int]] = {}
    test: dict[str, dict[str, int]] = {}
    for qid, rels in qrels.items():
        bucket = int(hashlib.sha256(qid.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF
        (tune if bucket < tune_fraction else test)[qid] = dict(rels)
    return tune, test


@dataclass(frozen=True)
class TuneResult:
    method: str
    setting: float
    tuned_score: float
    held_out_score: float
    default_held_out: float
    metric: str

    @property
    def gain(self) -> float:
        return self.held_out_score - self.default_held_out


def tune(
    legs: LegRuns,
    tune_qrels: Qrels,
    test_qrels: Mapping[str, Mapping[str, int]],
    metric: str = "ndcg@10",
) -> list[TuneResult]:
    """Best alpha (weighted, zscore) and rank constant (RRF), and adaptive, on ``tune_qrels``,
    scored on ``test_qrels`` against what a hybrid search does there with nothing stored
    (:func:`es_semantic.evaluation.runner.hybrid_fusion`)."""

    def score(method: str, value: float, qrels: Qrels) -> float:
        return evaluate(_run(legs, method, value), qrels, [metric])[metric]

    baseline = score(*default_setting(legs), test_qrels)  # what a search runs, nothing stored
    results = []
    grids = (("weighted", ALPHAS, 0.5), ("rrf", RANK_CONSTANTS, 60), ("adaptive", (0.0,), 0.0),
             ("zscore", ALPHAS, 0.5))  # fmt: skip
    for method, grid, default in grids:
        best = max(grid, key=lambda v: (score(method, v, tune_qrels), -abs(v - default)))
        results.append(
            TuneResult(
                method,
                best,
                score(method, best, tune_qrels),
                score(method, best, test_qrels),
                baseline,
                metric,
            )
        )
    return results


def held_out_legs(
    legs: LegRuns, test_qrels: Mapping[str, Mapping[str, int]], metric: str = "ndcg@10"
) -> dict[str, float]:
    """Each single leg's ``metric`` on ``test_qrels``: what a fusion must not fall below."""
    return {
        leg: evaluate(_leg_ranked(legs, leg), test_qrels, [metric])[metric] for leg in legs.hits
    }


def _leg_ranked(legs: LegRuns, leg: str) -> dict[str, list[str]]:
    return {q: [h.id for h in hits] for q, hits in legs.hits[leg].items()}


def fusion_or_best_leg(
    legs: LegRuns, chosen: TuneResult, tune_qrels: Qrels, test_qrels: Qrels
) -> tuple[TuneResult, str, Gain]:
    """The guard that fusion never loses to its best leg: ``chosen`` stays when its gain over
    the best single leg on ``tune_qrels`` has a paired-bootstrap interval above 0; otherwise
    that leg is kept, as weighted fusion giving it every weight (kNN: alpha 1; keyword, with
    two legs: alpha 0), where such a setting exists. Returns the setting, the best leg and
    the gain measured."""
    metric = chosen.metric
    scores = {leg: per_query(_leg_ranked(legs, leg), tune_qrels, metric) for leg in legs.hits}
    best = max(scores, key=lambda leg: (sum(scores[leg].values()), leg == "knn"))
    fused = per_query(tuned_run(legs, chosen).ranked, tune_qrels, metric)
    gain = paired_bootstrap(scores[best], fused)
    alone = {"knn": 1.0, **({"keyword": 0.0} if set(legs.hits) == {"keyword", "knn"} else {})}
    if gain.helps or best not in alone:
        return chosen, best, gain
    kept = _scored(legs, ("weighted", alone[best]), chosen, tune_qrels, test_qrels)
    return kept, best, gain


def best_fusion(results: list[TuneResult]) -> TuneResult:
    """The setting to keep: the best on the tuning queries (the held-out ones only report)."""
    return max(results, key=lambda r: r.tuned_score)


def tuned_or_default(
    legs: LegRuns, fused: TuneResult, tune_qrels: Qrels, test_qrels: Qrels
) -> tuple[TuneResult, Gain]:
    """``fused`` (the best on the tuning queries) replaces the default a search runs with
    nothing stored only when its gain over that default on ``tune_qrels`` has a
    paired-bootstrap interval above 0; otherwise the default is kept (a setting picked from a
    grid on half the queries is ahead of it partly by chance)."""
    default = default_setting(legs)
    gain = paired_bootstrap(
        per_query(_run(legs, *default), tune_qrels, fused.metric),
        per_query(tuned_run(legs, fused).ranked, tune_qrels, fused.metric),
    )
    if gain.helps or (fused.method, fused.setting) == default:
        return fused, gain
    return _scored(legs, default, fused, tune_qrels, test_qrels), gain


def default_setting(legs: LegRuns) -> tuple[str, float]:
    """The fusion and its setting (alpha, rank constant, or 0 for adaptive) a hybrid search
    over ``legs`` runs with nothing stored, as a :class:`TuneResult` names them."""
    method, rank_constant, alpha = hybrid_fusion(list(legs.hits), None)
    return method, alpha if method in ALPHA_FUSIONS else float(
        rank_constant
    ) if method == "rrf" else 0.0


def _run(legs: LegRuns, method: str, setting: float) -> dict[str, list[str]]:
    return tuned_run(legs, TuneResult(method, setting, 0.0, 0.0, 0.0, "")).ranked


def _scored(
    legs: LegRuns, setting: tuple[str, float], like: TuneResult, tune_qrels: Qrels,
    test_qrels: Qrels,
) -> TuneResult:  # fmt: skip
    """``setting`` scored on the tuning and held-out queries, against ``like``'s default."""
    run, metric = _run(legs, *setting), like.metric
    return TuneResult(
        *setting, evaluate(run, tune_qrels, [metric])[metric],
        evaluate(run, test_qrels, [metric])[metric], like.default_held_out, metric,
    )  # fmt: skip


def tuned_run(legs: LegRuns, chosen: TuneResult) -> ModeRun:
    """The first stage a search with ``chosen`` stored would give."""
    if chosen.method in ALPHA_FUSIONS:
        return fused_mode(legs, chosen.method, alpha=chosen.setting)
    if chosen.method == "rrf":
        return fused_mode(legs, "rrf", rank_constant=int(chosen.setting))
    return fused_mode(legs, chosen.method)


def tune_rerank_weight(
    base: ModeRun,
    scores: RerankScores,
    tune_qrels: Qrels,
    test_qrels: Qrels,
    metric: str = "ndcg@10",
) -> TuneResult:
    """The blend weight (0 = first stage, 1 = cross-encoder) best on ``tune_qrels``; ties go
    to the smaller weight (the first stage is the safe side), and a weight whose gain over the
    first stage on ``tune_qrels`` is not clear (its paired bootstrap interval reaches 0) gives
    way to 0: a reranker that moves a few tuning queries by chance is not kept.
    ``default_held_out``: the first stage alone on ``test_qrels``."""

    def score(weight: float, qrels: Qrels) -> float:
        return evaluate(blended_mode(base, scores, weight).ranked, qrels, [metric])[metric]

    best = max(RERANK_WEIGHTS, key=lambda w: (score(w, tune_qrels), -w))
    if best > 0.0:
        gain = paired_bootstrap(
            per_query(base.ranked, tune_qrels, metric),
            per_query(blended_mode(base, scores, best).ranked, tune_qrels, metric),
        )
        best = best if gain.low > 0.0 else 0.0
    return TuneResult(
        "rerank", best, score(best, tune_qrels), score(best, test_qrels), score(0.0, test_qrels),
        metric,
    )  # fmt: skip
