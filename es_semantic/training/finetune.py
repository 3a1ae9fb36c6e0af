"""Fine-tune a bi-encoder or train a cross-encoder on a PairSet with sentence-transformers'
trainers (the ``train`` extra): the loss from the columns, evaluation on a dev split every epoch,
the best epoch kept, before/after metrics, and a record of how the folder was made.

The written folder is a sentence-transformers folder, which ``Encoder`` / ``CrossEncoder`` load;
``es_semantic_training.json`` beside the weights records base model, data hashes, loss and
settings. Checkpoints go to ``OUT/checkpoints`` while training (a re-run resumes from the last
one) and are removed once the best model is saved.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TypedDict

from es_semantic._version import __version__
from es_semantic.errors import ConfigError, MissingDependencyError
from es_semantic.training.data import PairSet, split_dev

LOSSES = ("auto", "cosent", "mnrl", "contrastive")
RECORD_FILE = "es_semantic_training.json"
LOSS_FOR_KIND = {"scored": "cosent", "labelled": "contrastive", "queries": "mnrl"}
KIND_FOR_LOSS = {"cosent": "scored", "contrastive": "labelled", "mnrl": "queries"}


@dataclass
class TrainSettings:
    """What decides a training run (recorded beside the weights)."""

    epochs: int = 1
    batch_size: int = 32
    lr: float = 2e-5
    max_length: int | None = None
    seed: int = 42
    device: str | None = None
    fp16: bool = False
    warmup_ratio: float = 0.1
    matryoshka: list[int] = field(default_factory=list)


class StepDefaults(TypedDict):
    epochs: int
    batch_size: int
    lr: float


RERANKER_DEFAULTS = StepDefaults(epochs=3, batch_size=16, lr=5e-5)
"""A reranker's scoring head starts from random weights: on a thousand queries one epoch at
2e-5 (about a hundred steps) leaves every score near the share of positives; a few hundred
steps at 5e-5 learn (SciFact: the positive ranks first for 0.93 of held-out queries)."""


@dataclass
class TrainReport:
    """Before/after on the dev rows, and where the time went."""

    out: str
    loss: str
    metric: str
    before: dict[str, float]
    after: dict[str, float]
    train_rows: int
    dev_rows: int
    dev_source: str
    seconds: float
    seconds_per_epoch: float
    losses: list[float] = field(default_factory=list)  # training loss per epoch

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def _st() -> Any:
    try:
        import sentence_transformers
    except ImportError as exc:
        raise MissingDependencyError("sentence-transformers", "train", "fine-tuning") from exc
    return sentence_transformers


def pick_loss(loss: str, pairs: PairSet) -> str:
    """``auto``: CoSENT for scored pairs, contrastive for labelled, MNRL for query pairs."""
    if loss not in LOSSES:
        raise ConfigError(f"--loss {loss!r} is not one of {', '.join(LOSSES)}")
    chosen = LOSS_FOR_KIND[pairs.kind] if loss == "auto" else loss
    if KIND_FOR_LOSS[chosen] != pairs.kind:
        raise ConfigError(
            f"--loss {chosen} needs {KIND_FOR_LOSS[chosen]} rows; {pairs.source} holds "
            f"{pairs.kind} rows (--loss auto picks {LOSS_FOR_KIND[pairs.kind]})"
        )
    return chosen


def with_dev(train: PairSet, dev: PairSet | None, report: Callable[[str], None]) -> tuple[
        PairSet, PairSet, str]:  # fmt: skip
    if dev is not None:
        if dev.kind != train.kind:
            raise ConfigError(f"--dev holds {dev.kind} rows, the training file {train.kind} rows")
        return train, dev, dev.source
    train, dev = split_dev(train)
    report(f"no --dev file: {len(dev)} rows (10%, by a hash of the first text) cut from "
           f"{train.source} as the dev split; they are not trained on")  # fmt: skip
    return train, dev, f"cut from {train.source}"


def bi_encoder_dataset(pairs: PairSet) -> Any:
    from datasets import Dataset

    if pairs.kind == "scored":
        return Dataset.from_dict({"sentence1": pairs.first, "sentence2": pairs.second,
                                  "score": pairs.scores})  # fmt: skip
    if pairs.kind == "labelled":
        return Dataset.from_dict({"sentence1": pairs.first, "sentence2": pairs.second,
                                  "label": [int(s) for s in pairs.scores]})  # fmt: skip
    columns: dict[str, list[str]] = {"anchor": pairs.first, "positive": pairs.second}
    width = min((len(n) for n in pairs.negatives), default=0)
    for j in range(width):  # every row must have as many negatives: the fewest any row has
        columns[f"negative_{j + 1}"] = [n[j] for n in pairs.negatives]
    return Dataset.from_dict(columns)


def bi_encoder_evaluator(dev: PairSet) -> tuple[Any, str]:
    """The dev evaluator and its primary metric's key."""
    from sentence_transformers.sentence_transformer import evaluation

    if dev.kind == "scored":
        ev = evaluation.EmbeddingSimilarityEvaluator(dev.first, dev.second, dev.scores, name="dev")
        return ev, "dev_spearman_cosine"
    if dev.kind == "labelled":
        ev = evaluation.BinaryClassificationEvaluator(
            dev.first, dev.second, [int(s) for s in dev.scores], name="dev"
        )
        return ev, "dev_cosine_ap"
    queries = {f"q{i}": q for i, q in enumerate(dev.first)}
    corpus: dict[str, str] = {}
    ids: dict[str, str] = {}
    for text in dev.second + [n for row in dev.negatives for n in row]:
        ids.setdefault(text, f"d{len(ids)}")
        corpus[ids[text]] = text
    relevant = {f"q{i}": {ids[p]} for i, p in enumerate(dev.second)}
    ev = evaluation.InformationRetrievalEvaluator(queries, corpus, relevant, name="dev",
                                                  show_progress_bar=False)  # fmt: skip
    return ev, "dev_cosine_ndcg@10"


BI_ENCODER_EXTRAS = ("dev_cosine_accuracy", "dev_cosine_mrr@10", "dev_pearson_cosine")
RERANKER_EXTRAS = ("dev_mrr@10", "dev_accuracy", "dev_f1")


def _keep(metrics: dict[str, float], key: str, extras: tuple[str, ...]) -> dict[str, float]:
    """The primary metric and a few companions, rounded, for the before/after table."""
    return {k: round(float(v), 6) for k, v in metrics.items() if k == key or k in extras}


def finetune(
    base: str,
    train: PairSet,
    out: str | Path,
    *,
    dev: PairSet | None = None,
    loss: str = "auto",
    settings: TrainSettings | None = None,
    report: Callable[[str], None] = print,
    progress: bool = True,
) -> TrainReport:
    """Fine-tune the bi-encoder ``base`` on ``train``; the best epoch on the dev rows is saved."""
    st = _st()
    from sentence_transformers.sentence_transformer import losses

    settings = settings or TrainSettings()
    _check_device(settings)
    chosen = pick_loss(loss, train)
    train, dev, dev_source = with_dev(train, dev, report)
    out = Path(out)
    model = st.SentenceTransformer(base, device=settings.device)
    if settings.max_length:
        model.max_seq_length = settings.max_length
    inner: Any = {
        "cosent": lambda: losses.CoSENTLoss(model),
        "contrastive": lambda: losses.ContrastiveLoss(model),
        "mnrl": lambda: losses.MultipleNegativesRankingLoss(model),
    }[chosen]()
    if settings.matryoshka:
        inner = losses.MatryoshkaLoss(model, inner, matryoshka_dims=settings.matryoshka)
    evaluator, key = bi_encoder_evaluator(dev)
    before = _keep(evaluator(model), key, BI_ENCODER_EXTRAS)
    args = st.SentenceTransformerTrainingArguments(
        **_common_args(out, settings, key, progress),
        # MNRL: no text twice in a batch (it would be its own false negative)
        batch_sampler="no_duplicates" if chosen == "mnrl" else "batch_sampler",
    )  # fmt: skip
    trainer = st.SentenceTransformerTrainer(
        model=model, args=args, train_dataset=bi_encoder_dataset(train),
        eval_dataset=bi_encoder_dataset(dev), loss=inner, evaluator=evaluator,
    )  # fmt: skip
    seconds = _train(trainer, out, report)
    after = _keep(evaluator(model), key, BI_ENCODER_EXTRAS)
    model.save(str(out))
    result = TrainReport(str(out), chosen, key, before, after, len(train), len(dev), dev_source,
                         round(seconds, 2), round(seconds / settings.epochs, 2),
                         epoch_losses(trainer))  # fmt: skip
    _record(out, base, "bi-encoder", train, dev, settings, result)
    warn_if_worse(result, report)
    return result


def warn_if_worse(result: TrainReport, report: Callable[[str], None]) -> None:
    """Say so when the saved model scores below the base on the dev rows."""
    before, after = result.before.get(result.metric), result.after.get(result.metric)
    if before is not None and after is not None and after < before:
        report(
            f"warning: the trained model is worse than the base on the dev rows "
            f"({result.metric} {before:.4f} -> {after:.4f}); try a lower --lr or more "
            "--epochs, and keep the base (`migrate`'s eval gate would refuse this one)"
        )


def epoch_losses(trainer: Any) -> list[float]:
    return [round(float(e["loss"]), 6) for e in trainer.state.log_history if "loss" in e]


def _on_cuda(settings: TrainSettings) -> bool:
    """Whether training runs on a CUDA GPU (named, or found when no device is named)."""
    if settings.device is not None:
        return settings.device.startswith("cuda")
    import torch

    return bool(torch.cuda.is_available())


def _check_device(settings: TrainSettings) -> None:
    if settings.fp16 and not _on_cuda(settings):
        raise ConfigError("--fp16 is for CUDA GPUs: add --device cuda, or leave --fp16 out")


def _common_args(out: Path, settings: TrainSettings, key: str, progress: bool) -> dict[str, Any]:
    return {
        "output_dir": str(out / "checkpoints"),
        "num_train_epochs": settings.epochs,
        "per_device_train_batch_size": settings.batch_size,
        "per_device_eval_batch_size": settings.batch_size,
        "learning_rate": settings.lr,
        **_warmup(settings.warmup_ratio),
        "seed": settings.seed,
        "data_seed": settings.seed,
        "fp16": settings.fp16,
        "eval_strategy": "epoch",
        "save_strategy": "epoch",
        "save_total_limit": 2,
        "load_best_model_at_end": True,
        "metric_for_best_model": f"eval_{key}",
        "greater_is_better": True,
        "report_to": "none",
        "logging_strategy": "epoch",
        "disable_tqdm": not progress,
        "use_cpu": (settings.device or "") == "cpu",
        "dataloader_pin_memory": _on_cuda(settings),  # pinned pages only help copies to a GPU
    }


def _warmup(ratio: float) -> dict[str, Any]:
    """transformers 5 takes the warmup ratio as a float ``warmup_steps``; 4 as ``warmup_ratio``."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"warmup_steps": ratio} if major >= 5 else {"warmup_ratio": ratio}


def _train(trainer: Any, out: Path, report: Callable[[str], None]) -> float:
    from transformers.trainer_utils import get_last_checkpoint

    checkpoints = out / "checkpoints"
    last = get_last_checkpoint(str(checkpoints)) if checkpoints.is_dir() else None  # type: ignore[no-untyped-call]
    if last:
        report(f"resuming from {last}")
    started = time.perf_counter()
    with contextlib.redirect_stdout(sys.stderr):  # the trainer prints its logs: keep --json clean
        trainer.train(resume_from_checkpoint=last)
    seconds = time.perf_counter() - started
    return seconds


def _record(out: Path, base: str, kind: str, train: PairSet, dev: PairSet,
            settings: TrainSettings, result: TrainReport) -> None:  # fmt: skip
    shutil.rmtree(out / "checkpoints", ignore_errors=True)
    record = {
        "es_semantic": __version__,
        "kind": kind,
        "base_model": base,
        "train": {"source": train.source, "rows": len(train), "sha256_16": train.digest()},
        "dev": {"source": result.dev_source, "rows": len(dev), "sha256_16": dev.digest()},
        "loss": result.loss,
        "settings": asdict(settings),
        "result": result.to_json(),
    }
    (out / RECORD_FILE).write_text(json.dumps(record, indent=2, ensure_ascii=False), "utf-8")


def read_record(folder: str | Path) -> dict[str, Any] | None:
    """The training record of a fine-tuned folder, if it has one."""
    path = Path(folder) / RECORD_FILE
    return json.loads(path.read_text("utf-8")) if path.is_file() else None


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
    the dev rows is saved where ``CrossEncoder`` loads it."""
    _st()
    import torch
    from datasets import Dataset
    from sentence_transformers.cross_encoder import (
        CrossEncoder,
        CrossEncoderTrainer,
        CrossEncoderTrainingArguments,
    )
    from sentence_transformers.cross_encoder.losses import BinaryCrossEntropyLoss

    settings = settings or TrainSettings(**RERANKER_DEFAULTS)
    _check_device(settings)
    reranker_rows(train)  # a clear error before any model loads
    train, dev, dev_source = with_dev(train, dev, report)
    out = Path(out)
    model = CrossEncoder(base, num_labels=1, device=settings.device,
                         max_length=settings.max_length)  # fmt: skip
    evaluator, key = reranker_evaluator(dev)

    def dataset(rows: tuple[list[str], list[str], list[int]]) -> Any:
        queries, passages, labels = rows
        return Dataset.from_dict({"query": queries, "passage": passages,
                                  "label": [float(x) for x in labels]})  # fmt: skip

    before = _keep(evaluator(model), key, RERANKER_EXTRAS)
    args = CrossEncoderTrainingArguments(**_common_args(out, settings, key, progress))
    train_rows = reranker_rows(train)
    weight = torch.tensor(positive_weight(train_rows[2]), device=model.device)
    loss = BinaryCrossEntropyLoss(model, pos_weight=weight)
    trainer = CrossEncoderTrainer(model=model, args=args, train_dataset=dataset(train_rows),
                                  eval_dataset=dataset(reranker_rows(dev)), loss=loss,
                                  evaluator=evaluator)  # fmt: skip
    seconds = _train(trainer, out, report)
    after = _keep(evaluator(model), key, RERANKER_EXTRAS)
    model.save_pretrained(str(out))
    result = TrainReport(str(out), "binary-cross-entropy", key, before, after, len(train),
                         len(dev), dev_source, round(seconds, 2),
                         round(seconds / settings.epochs, 2), epoch_losses(trainer))  # fmt: skip
    _record(out, base, "cross-encoder", train, dev, settings, result)
    warn_if_worse(result, report)
    return result
