"""Fine-tune a bi-encoder on a PairSet with sentence-transformers' trainer (the ``train``
extra): the loss from the columns, evaluation on a dev split every epoch with the base as epoch
0, the best epoch kept (the base when none beats it), before/after metrics, ``lr="auto"``
trials (:mod:`es_semantic.training.run`), and for scored pairs a trial of each scored-pair
loss (:func:`pick_scored_loss`). The written folder is a
sentence-transformers folder, which ``Encoder`` loads.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from es_semantic.errors import ConfigError
from es_semantic.training.data import PairSet
from es_semantic.training.run import (
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
    trial_rows,
    warn_if_worse,
    with_dev,
    write_record,
)

LOSSES = ("auto", "cosine", "cosent", "mnrl", "contrastive")
# scored pairs: neither loss wins everywhere (measured, docs/guides/fine-tuning.md): the cosine
# loss (the score as the target cosine) lifted MiniLM on STS-B by +0.026 where CoSENT gave
# +0.004; on Chinese STS-B it took m3e-small (whose cosines sit high) below its base where
# CoSENT gained +0.033. ``auto`` runs a trial of each (ties keep the first, CoSENT).
LOSS_FOR_KIND = {"scored": ("cosent", "cosine"), "labelled": ("contrastive",),
                 "queries": ("mnrl",)}  # fmt: skip
KIND_FOR_LOSS = {"cosine": "scored", "cosent": "scored", "contrastive": "labelled",
                 "mnrl": "queries"}  # fmt: skip
BI_ENCODER_EXTRAS = ("dev_cosine_accuracy", "dev_cosine_mrr@10", "dev_pearson_cosine")


def loss_candidates(loss: str, pairs: PairSet) -> tuple[str, ...]:
    """The losses to train with: the one named, or with ``auto`` the ones that fit the rows
    (scored pairs: CoSENT and cosine, chosen by a trial; labelled: contrastive; queries: MNRL)."""
    if loss not in LOSSES:
        raise ConfigError(f"--loss {loss!r} is not one of {', '.join(LOSSES)}")
    if loss == "auto":
        return LOSS_FOR_KIND[pairs.kind]
    if KIND_FOR_LOSS[loss] != pairs.kind:
        raise ConfigError(
            f"--loss {loss} needs {KIND_FOR_LOSS[loss]} rows; {pairs.source} holds "
            f"{pairs.kind} rows (--loss auto picks {' or '.join(LOSS_FOR_KIND[pairs.kind])})"
        )
    return (loss,)


def pick_scored_loss(
    candidates: tuple[str, ...], settings: TrainSettings, train: PairSet,
    trial: Callable[[str, PairSet, TrainSettings], float], report: Callable[[str], None],
) -> tuple[str, list[dict[str, Any]]]:  # fmt: skip
    """With more than one candidate: one pass over a seeded share of the rows per loss from the
    base (at the run's rate; the default rate under ``lr="auto"``), each scored on the dev
    rows; the best loss (ties: the first) and the trials."""
    if len(candidates) == 1:
        return candidates[0], []
    lr = TrainSettings.lr if settings.lr == "auto" else settings.lr
    rows, scores = trial_rows(train, settings.seed), {}
    for loss in candidates:
        scores[loss] = round(float(trial(loss, rows, replace(settings, lr=lr, epochs=1))), 6)
        report(f"--loss auto: {loss}, one pass over {len(rows)} rows at lr {lr:g}: "
               f"dev {scores[loss]:.4f}")  # fmt: skip
    best = max(scores, key=lambda loss: scores[loss])  # the first of equals
    report(f"--loss auto: training with {best}")
    return best, [{"loss": loss, "dev": dev} for loss, dev in scores.items()]


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
    """Fine-tune the bi-encoder ``base`` on ``train``; the best point on the dev rows (scored
    ``settings.evals_per_epoch`` times an epoch) is saved, or the base itself when no point
    beats it there (``settings.keep_trained`` saves the best point anyway).
    ``settings.lr="auto"`` first runs the learning-rate trials (:func:`pick_lr`).
    """
    st = require_st()
    settings = settings or TrainSettings()
    check_device(settings)
    candidates = loss_candidates(loss, train)
    train, dev, dev_source = with_dev(train, dev, report)
    out = Path(out)
    model = st.SentenceTransformer(base, device=settings.device)
    if settings.max_length:
        model.max_seq_length = settings.max_length
    evaluator, key = bi_encoder_evaluator(dev)
    before = keep_metrics(evaluator(model), key, BI_ENCODER_EXTRAS)
    base_weights = snapshot(model)

    def trainer(loss: str, rows: PairSet, run: TrainSettings, trial: bool = False) -> Any:
        model.load_state_dict(base_weights)  # every run starts from the base
        args = st.SentenceTransformerTrainingArguments(
            **trainer_args(out, run, key, progress and not trial, trial),
            # MNRL: no text twice in a batch (it would be its own false negative)
            batch_sampler="no_duplicates" if loss == "mnrl" else "batch_sampler",
        )  # fmt: skip
        return st.SentenceTransformerTrainer(model=model, args=args, loss=bi_encoder_loss(
            loss, model, run.matryoshka), train_dataset=bi_encoder_dataset(rows),
            evaluator=evaluator, callbacks=dev_checks(run, trial))  # fmt: skip

    # (loss, lr, rows) -> dev: lr="auto" repeats the loss trial at the default rate
    tried: dict[tuple[str, float, int], float] = {}

    def trial(loss: str, rows: PairSet, run: TrainSettings) -> float:
        done = (loss, float(run.lr), len(rows))
        if done not in tried:
            tried[done] = run_trial(trainer(loss, rows, run, trial=True),
                                    lambda: float(evaluator(model)[key]))  # fmt: skip
        return tried[done]

    chosen, loss_trials = pick_scored_loss(candidates, settings, train, trial, report)
    settings, trials = pick_lr(settings, train, lambda rows, run: trial(chosen, rows, run), report)
    fitted = trainer(chosen, train, settings)
    seconds = run_trainer(fitted, out, report)
    after, scores, kept = conclude(fitted, key, BI_ENCODER_EXTRAS, before, settings.keep_trained)
    if not kept:
        model.load_state_dict(base_weights)
    save_result(kept, base, out, lambda: model.save(str(out)))
    result = TrainReport(str(out), chosen, key, before, after, len(train), len(dev), dev_source,
                         round(seconds, 2), round(seconds / settings.epochs, 2),
                         epoch_losses(fitted), scores, "trained" if kept else "base",
                         float(settings.lr), trials, loss_trials)  # fmt: skip
    write_record(out, base, "bi-encoder", train, dev, settings, result)
    warn_if_worse(result, report)
    return result


def bi_encoder_loss(chosen: str, model: Any, matryoshka: list[int]) -> Any:
    """The loss module for the chosen loss (wrapped in Matryoshka when dimensions are given)."""
    from sentence_transformers.sentence_transformer import losses

    inner: Any = {
        "cosine": lambda: losses.CosineSimilarityLoss(model),
        "cosent": lambda: losses.CoSENTLoss(model),
        "contrastive": lambda: losses.ContrastiveLoss(model),
        "mnrl": lambda: losses.MultipleNegativesRankingLoss(model),
    }[chosen]()
    if matryoshka:
        inner = losses.MatryoshkaLoss(model, inner, matryoshka_dims=matryoshka)
    return inner
