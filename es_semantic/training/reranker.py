"""Train a cross-encoder (reranker) on a PairSet with sentence-transformers' trainer (the
``train`` extra): (query, passage, label) rows, binary cross-entropy with the positives weighted
by the negatives, the best epoch on the dev rows saved where ``CrossEncoder`` loads it."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from es_semantic.errors import ConfigError
from es_semantic.training.data import PairSet
from es_semantic.training.run import (
    StepDefaults,
    TrainReport,
    TrainSettings,
    check_device,
    conclude,
    dev_checks,
    epoch_losses,
    keep_metrics,
    pick_lr,
    require_st,
    run_trainer,
    run_trial,
    save_result,
    snapshot,
    trainer_args,
    warn_if_worse,
    with_dev,
    write_record,
)

RERANKER_DEFAULTS = StepDefaults(epochs=3, batch_size=16, lr=5e-5)
"""A reranker's scoring head starts from random weights: on a thousand queries one epoch at
2e-5 (about a hundred steps) leaves every score near the share of positives; a few hundred
steps at 5e-5 learn (SciFact: the positive ranks first for 0.93 of held-out queries)."""


RERANKER_EXTRAS = ("dev_mrr@10", "dev_accuracy", "dev_f1")


def reranker_rows(pairs: PairSet) -> tuple[list[str], list[str], list[int]]:
    """(query, passage, label) rows: labelled pairs as they are; query pairs as the positive
    (1) and each negative (0)."""
    if pairs.kind == "labelled":
        return pairs.first, pairs.second, [int(s) for s in pairs.scores]
    if pairs.kind != "queries":
        raise ConfigError(
            f"{pairs.source} holds scored pairs; a reranker trains on (query, passage, label) "
            "or (query, positive[, negative...]) rows"
        )
    if not any(pairs.negatives):
        raise ConfigError(
            f"{pairs.source} has no negatives: add negative columns or mine them with "
            "--hard-negatives-from INDEX"
        )
    queries, passages, labels = [], [], []
    for query, positive, negatives in zip(pairs.first, pairs.second, pairs.negatives, strict=True):
        for passage, label in [(positive, 1), *((n, 0) for n in negatives)]:
            queries.append(query)
            passages.append(passage)
            labels.append(label)
    return queries, passages, labels


def positive_weight(labels: Sequence[int]) -> float:
    """Negatives per positive: weighting the positives by it keeps binary cross-entropy from
    settling on the share of positives (1 in 4 with three mined negatives) and learning nothing
    else (sentence-transformers' reranker recipe)."""
    positives = sum(1 for label in labels if label)
    return max(1.0, (len(labels) - positives) / positives) if positives else 1.0


def reranker_evaluator(dev: PairSet) -> tuple[Any, str]:
    from sentence_transformers.cross_encoder import evaluation

    queries, passages, labels = reranker_rows(dev)
    if dev.kind == "labelled":
        ev = evaluation.CrossEncoderClassificationEvaluator(
            [[q, p] for q, p in zip(queries, passages, strict=True)], labels, name="dev"
        )
        return ev, "dev_average_precision"
    samples: dict[str, dict[str, list[str]]] = {}
    for query, passage, label in zip(queries, passages, labels, strict=True):
        entry = samples.setdefault(query, {"positive": [], "negative": []})
        entry["positive" if label else "negative"].append(passage)
    ev = evaluation.CrossEncoderRerankingEvaluator(
        [{"query": q, **entry} for q, entry in samples.items()], at_k=10, name="dev"
    )
    return ev, "dev_ndcg@10"


def train_reranker(
    base: str,
    train: PairSet,
    out: str | Path,
    *,
    dev: PairSet | None = None,
    settings: TrainSettings | None = None,
    report: Callable[[str], None] = print,
    progress: bool = True,
) -> TrainReport:
    """Train a one-label cross-encoder from ``base`` (binary cross-entropy); the best epoch on
    the dev rows is saved where ``CrossEncoder`` loads it, or the base (epoch 0) when no epoch
    beats it; ``settings.lr="auto"`` runs the learning-rate trials first."""
    require_st()
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    settings = settings or TrainSettings(**RERANKER_DEFAULTS)
    check_device(settings)
    reranker_rows(train)  # a clear error before any model loads
    train, dev, dev_source = with_dev(train, dev, report)
    out = Path(out)
    model = CrossEncoder(base, num_labels=1, device=settings.device,
                         max_length=settings.max_length)  # fmt: skip
    evaluator, key = reranker_evaluator(dev)
    before = keep_metrics(evaluator(model), key, RERANKER_EXTRAS)
    base_weights = snapshot(model)

    def trainer(rows: PairSet, run: TrainSettings, trial: bool = False) -> Any:
        model.load_state_dict(base_weights)  # every run starts from the base
        args = CrossEncoderTrainingArguments(**trainer_args(out, run, key, progress and not trial,
                                                            trial))  # fmt: skip
        queries, passages, labels = reranker_rows(rows)
        weight = torch.tensor(positive_weight(labels), device=model.device)
        data = {"query": queries, "passage": passages, "label": [float(x) for x in labels]}
        return CrossEncoderTrainer(model=model, args=args, train_dataset=Dataset.from_dict(data),
                                   loss=BinaryCrossEntropyLoss(model, pos_weight=weight),
                                   evaluator=evaluator,
                                   callbacks=dev_checks(run, trial))  # fmt: skip

    settings, trials = pick_lr(settings, train, lambda rows, run: run_trial(
        trainer(rows, run, trial=True), lambda: float(evaluator(model)[key])), report)  # fmt: skip
    fitted = trainer(train, settings)
    seconds = run_trainer(fitted, out, report)
    after, scores, kept = conclude(fitted, key, RERANKER_EXTRAS, before, settings.keep_trained)
    if not kept:
        model.load_state_dict(base_weights)
    save_result(kept, base, out, lambda: model.save_pretrained(str(out)))
    result = TrainReport(str(out), "binary-cross-entropy", key, before, after, len(train),
                         len(dev), dev_source, round(seconds, 2),
                         round(seconds / settings.epochs, 2), epoch_losses(fitted), scores,
                         "trained" if kept else "base", float(settings.lr), trials)  # fmt: skip
    write_record(out, base, "cross-encoder", train, dev, settings, result)
    warn_if_worse(result, report)
    return result
