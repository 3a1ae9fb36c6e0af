"""Sweep hybrid settings on tuning queries, report on held-out ones (pure over leg runs)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass

from es_semantic.evaluation.metrics import Qrels, evaluate
from es_semantic.evaluation.runner import LegRuns, fused_mode

ALPHAS = tuple(round(0.1 * i, 1) for i in range(11))
RANK_CONSTANTS = (1, 5, 10, 20, 40, 60, 100)


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
    """Best alpha (weighted) and rank constant (RRF) on ``tune_qrels``, scored on ``test_qrels``."""

    def score(method: str, value: float, qrels: Qrels) -> float:
        run = (
            fused_mode(legs, "weighted", alpha=value)
            if method == "weighted"
            else fused_mode(legs, "rrf", rank_constant=int(value))
        )
        return evaluate(run.ranked, qrels, [metric])[metric]

    results = []
    for method, grid, default in (("weighted", ALPHAS, 0.5), ("rrf", RANK_CONSTANTS, 60)):
        best = max(grid, key=lambda v: (score(method, v, tune_qrels), -abs(v - default)))
        results.append(
            TuneResult(
                method,
                best,
                score(method, best, tune_qrels),
                score(method, best, test_qrels),
                score(method, default, test_qrels),
                metric,
            )
        )
    return results
