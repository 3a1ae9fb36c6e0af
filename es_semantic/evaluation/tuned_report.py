"""``eval --tune [--save]`` and rerank's gain report: tune on part of the queries, report on the
rest, and store what was found in the index's ``_meta`` (the one I/O: ``save_tuning_steps``)."""

from __future__ import annotations

import datetime
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from elasticsearch import Elasticsearch

from es_semantic.elastic.calls import run
from es_semantic.evaluation.metrics import Qrels, per_query
from es_semantic.evaluation.runner import (
    LegRuns,
    ModeRun,
    blended_mode,
    rerank_scores,
)
from es_semantic.evaluation.saved import data_digest, save_tuning_steps
from es_semantic.evaluation.significance import Gain, paired_bootstrap
from es_semantic.evaluation.tuning import (
    TuneResult,
    best_fusion,
    default_setting,
    fusion_or_best_leg,
    held_out_legs,
    split_queries,
    tune,
    tune_rerank_weight,
    tuned_or_default,
    tuned_run,
)
from es_semantic.schema.tuning import RerankEvaluation, Tuning
from es_semantic.search.fusion import ALPHA_FUSIONS

if TYPE_CHECKING:
    from es_semantic.encoding.reranker import CrossEncoder

METRIC = "ndcg@10"
LEG_MARGIN = 0.005  # a fusion should not fall further than this below its best single leg
NO_HELP = "rerank does not help on these queries"


@dataclass(frozen=True)
class TuneInputs:
    """What ``eval --tune`` works from."""

    legs: LegRuns
    queries: Mapping[str, str]
    qrels: Qrels
    sources: tuple[str, str]  # the queries and qrels files
    fraction: float
    reranker: CrossEncoder | None = None
    rerank_top: int = 20


def rerank_gain(base: ModeRun, reranked: ModeRun, qrels: Qrels) -> Gain:
    """Per-query ``METRIC`` gain of ``reranked`` over its first stage, paired bootstrap."""
    return paired_bootstrap(
        per_query(base.ranked, qrels, METRIC), per_query(reranked.ranked, qrels, METRIC)
    )


def gain_line(what: str, gain: Gain) -> str:
    verdict = "" if gain.helps else f": {NO_HELP}"
    return f"{what}: {gain.describe(METRIC)}{verdict}"


def rerank_gain_lines(runs: Mapping[str, ModeRun], qrels: Qrels) -> list[str]:
    """One line per ``MODE+rerank`` run: its gain over ``MODE`` with a 95% interval."""
    lines = []
    for mode, run_ in runs.items():
        base = runs.get(mode.removesuffix("+rerank"))
        if mode.endswith("+rerank") and base is not None:
            lines.append(gain_line(f"rerank over {mode.removesuffix('+rerank')}",
                                   rerank_gain(base, run_, qrels)))  # fmt: skip
    return lines


def _fusion_lines(results: list[TuneResult], default: str) -> list[str]:
    names = {**dict.fromkeys(ALPHA_FUSIONS, "best alpha="), "rrf": "best rank_constant="}
    return [
        f"  {r.method}: {names[r.method] + str(r.setting) if r.method in names else 'per query'} "
        f"({r.metric} {r.tuned_score:.4f} "
        f"tuned); held out {r.held_out_score:.4f} vs the default ({default}) "
        f"{r.default_held_out:.4f} ({r.gain:+.4f})"
        for r in results
    ]


def _guard_line(leg: str, gain: Gain, kept: TuneResult | None) -> str:
    """Is the fusion clearly better than its best leg on the tuning queries (else: the leg)?"""
    if gain.helps:
        verdict = "clear: the fusion is kept"
    elif kept is not None:
        verdict = f"not clear: the {leg} leg is kept (weighted alpha={kept.setting})"
    else:
        verdict = f"not clear, but no stored setting runs the {leg} leg alone: the fusion is kept"
    return f"  fusion over the best leg ({leg}), tuning queries: {gain.describe(METRIC)}; {verdict}"


def _legs_line(legs: Mapping[str, float], chosen: TuneResult) -> str:
    """The held-out legs beside the chosen fusion: how far above or under the best it is, and
    whether that is within ``LEG_MARGIN``."""
    best = max(legs, key=lambda leg: legs[leg])
    diff = round(chosen.held_out_score - legs[best], 4)
    if diff >= 0:
        where = f"{diff:+.4f} over the best leg ({best})"
    else:
        verdict = "within" if diff >= -LEG_MARGIN else "NOT within"
        where = f"{diff:+.4f} under the best leg ({best}), {verdict} {LEG_MARGIN}"
    shown = ", ".join(f"{leg} {score:.4f}" for leg, score in legs.items())
    return (
        f"  held out, single legs: {shown}; {chosen.method} (kept) "
        f"{chosen.held_out_score:.4f}: {where}"
    )


def _rerank_evaluation(
    inputs: TuneInputs, first: ModeRun, tune_qrels: Qrels, test_qrels: Qrels
) -> tuple[RerankEvaluation, list[str]]:
    assert inputs.reranker is not None
    reranker = inputs.reranker
    scores = rerank_scores(first, inputs.legs, inputs.queries, reranker, inputs.rerank_top)
    alone = rerank_gain(first, blended_mode(first, scores, 1.0), inputs.qrels)
    weight = tune_rerank_weight(first, scores, tune_qrels, test_qrels, METRIC)
    blended = rerank_gain(first, blended_mode(first, scores, weight.setting), test_qrels)
    evaluation = RerankEvaluation(
        reranker.name, reranker.fingerprint, weight.setting, round(alone.mean, 4),
        round(alone.low, 4), round(alone.high, 4), round(blended.mean, 4),
    )  # fmt: skip
    lines = [
        gain_line(f"rerank ({reranker.name}) alone over the tuned fusion", alone),
        f"  rerank weight: best {weight.setting} ({METRIC} {weight.tuned_score:.4f} tuned); "
        f"held out {weight.held_out_score:.4f} vs first stage {weight.default_held_out:.4f}",
        gain_line(f"rerank blended (weight {weight.setting}), held out", blended),
    ]
    return evaluation, lines


def tune_and_save(
    es: Elasticsearch, index: str, inputs: TuneInputs, *, save: bool = False
) -> list[str]:
    """Tune fusion (and the rerank weight when a reranker is given), report on held-out
    queries, and with ``save`` store the result in ``index``'s ``_meta``. Returns the lines
    to print."""
    tune_qrels, test_qrels = split_queries(inputs.qrels, inputs.fraction)
    if tune_qrels and test_qrels:
        lines = [
            f"tuning on {len(tune_qrels)} queries, reporting on the other {len(test_qrels)} "
            "(tuning and testing on the same queries overfits)"
        ]
    else:
        tune_qrels = test_qrels = {q: dict(r) for q, r in inputs.qrels.items()}
        lines = [
            f"too few queries ({len(inputs.qrels)}) to hold some out: tuned and reported on "
            "the same queries (this overfits; give more queries)"
        ]
    results = tune(inputs.legs, tune_qrels, test_qrels, METRIC)
    default = default_setting(inputs.legs)[0]
    lines += _fusion_lines(results, default)
    best = best_fusion(results)
    fused, over_default = tuned_or_default(inputs.legs, best, tune_qrels, test_qrels)
    if best.method != default or best is not fused:
        verdict = "clear: it is kept" if fused is best else "not clear: the default is kept"
        lines.append(f"  {best.method} over the default ({default}), tuning queries: "
                     f"{over_default.describe(METRIC)}; {verdict}")  # fmt: skip
    chosen, leg, gain = fusion_or_best_leg(inputs.legs, fused, tune_qrels, test_qrels)
    lines.append(_guard_line(leg, gain, chosen if chosen is not fused else None))
    lines.append(_legs_line(held_out_legs(inputs.legs, test_qrels, METRIC), chosen))
    rerank = None
    if inputs.reranker is not None:
        rerank, more = _rerank_evaluation(
            inputs, tuned_run(inputs.legs, chosen), tune_qrels, test_qrels
        )
        lines += more
    tuning = Tuning(
        fusion=chosen.method,
        alpha=chosen.setting if chosen.method in ALPHA_FUSIONS else 0.5,
        rank_constant=int(chosen.setting) if chosen.method == "rrf" else 60,
        metric=METRIC,
        before=round(chosen.default_held_out, 4),
        after=round(chosen.held_out_score, 4),
        queries=Path(inputs.sources[0]).name,
        qrels=Path(inputs.sources[1]).name,
        digest=data_digest(inputs.queries, inputs.qrels),
        date=datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        tuned_on=len(tune_qrels),
        held_out=len(test_qrels),
        rerank=rerank,
    )
    lines.append(f"tuned: {tuning.summary()}")
    if save:
        written = run(es, save_tuning_steps(index, tuning))
        lines.append(
            f"saved in the _meta of {', '.join(written)}: searches with --fusion auto use it"
        )
    return lines
