"""What a training run shares, bi-encoder or reranker: settings, the before/after report, the
dev split, the trainer's arguments, resuming from checkpoints, the learning-rate trials of
``lr="auto"``, the dev rows scored several times an epoch (:func:`dev_checks`), the guard that
hands back the base when no scored point beats it on the dev rows (the base is point 0), and
the record written beside the weights (``es_semantic_training.json``: base model, data hashes,
loss, settings). Checkpoints go to ``OUT/checkpoints`` while training and are removed once the
best model is saved."""

from __future__ import annotations

import contextlib
import json
import math
import random
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypedDict

from es_semantic._version import __version__
from es_semantic.errors import ConfigError, MissingDependencyError
from es_semantic.training.data import PairSet, split_dev

RECORD_FILE = "es_semantic_training.json"
AUTO_LRS = (5e-6, 2e-5, 8e-5)
"""``lr="auto"`` tries these (a factor of 4 apart) on a share of the rows, scored on dev."""
TRIAL_SHARE = 0.25
TRIAL_MIN_ROWS = 64
EVALS_PER_EPOCH = 4
"""The dev rows are scored this many times an epoch and the best point kept: on STS-B a
quarter of an epoch at 2e-5 scored +0.008 over MiniLM where the whole epoch lost 0.014."""


@dataclass
class TrainSettings:
    """What decides a training run (recorded beside the weights). ``lr="auto"``: a short trial
    per rate of :data:`AUTO_LRS`, the best on the dev rows used for the run (recorded).
    ``keep_trained``: save the best point even when it does not beat the base on dev.
    ``evals_per_epoch``: how often an epoch the dev rows are scored (a checkpoint each time)."""

    epochs: int = 1
    batch_size: int = 32
    lr: float | Literal["auto"] = 2e-5
    max_length: int | None = None
    seed: int = 42
    device: str | None = None
    fp16: bool = False
    warmup_ratio: float = 0.1
    matryoshka: list[int] = field(default_factory=list)
    keep_trained: bool = False
    evals_per_epoch: int = EVALS_PER_EPOCH


class StepDefaults(TypedDict):
    epochs: int
    batch_size: int
    lr: float


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
    # the dev metric at each scored point: [0] the base, then evals_per_epoch an epoch
    dev_scores: list[float] = field(default_factory=list)
    kept: Literal["trained", "base"] = "trained"  # "base": no point beat it, the base was saved
    lr: float | None = None  # the rate that ran (chosen by the trials with lr="auto")
    lr_trials: list[dict[str, float]] = field(default_factory=list)  # [{"lr", "dev"}]
    loss_trials: list[dict[str, Any]] = field(default_factory=list)  # [{"loss", "dev"}]

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def require_st() -> Any:
    try:
        import sentence_transformers
    except ImportError as exc:
        raise MissingDependencyError("sentence-transformers", "train", "fine-tuning") from exc
    return sentence_transformers


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


def keep_metrics(metrics: dict[str, float], key: str, extras: tuple[str, ...]) -> dict[str, float]:
    """The primary metric and a few companions, rounded, for the before/after table."""
    return {k: round(float(v), 6) for k, v in metrics.items() if k == key or k in extras}


def warn_if_worse(result: TrainReport, report: Callable[[str], None]) -> None:
    """Say so when the saved model scores below the base on the dev rows (``keep_trained``)."""
    before, after = result.before.get(result.metric), result.after.get(result.metric)
    if result.kept == "base":
        scored = ", ".join(f"{s:.4f}" for s in result.dev_scores[1:])
        advice = (
            f"the --lr auto trials chose {result.lr:g}: try a lower --lr or more data"
            if result.lr_trials and result.lr is not None
            else "try --lr auto, a lower --lr or more data"
        )
        report(
            f"no scored point beat the base on the dev rows ({result.metric}: base {before:.4f}, "
            f"then {scored}): the BASE model "
            f"was saved to {result.out} unchanged; {advice} "
            "(--keep-trained saves the best point anyway)"
        )
    elif before is not None and after is not None and after < before:
        report(
            f"warning: the trained model is worse than the base on the dev rows "
            f"({result.metric} {before:.4f} -> {after:.4f}); try a lower --lr or more "
            "--epochs, and keep the base (`migrate`'s eval gate would refuse this one)"
        )


def epoch_losses(trainer: Any) -> list[float]:
    return [round(float(e["loss"]), 6) for e in trainer.state.log_history if "loss" in e]


def on_cuda(settings: TrainSettings) -> bool:
    """Whether training runs on a CUDA GPU (named, or found when no device is named)."""
    if settings.device is not None:
        return settings.device.startswith("cuda")
    import torch

    return bool(torch.cuda.is_available())


def check_device(settings: TrainSettings) -> None:
    if settings.fp16 and not on_cuda(settings):
        raise ConfigError("--fp16 is for CUDA GPUs: add --device cuda, or leave --fp16 out")


def trainer_args(out: Path, settings: TrainSettings, key: str, progress: bool,
                 trial: bool = False) -> dict[str, Any]:  # fmt: skip
    """The trainer's arguments; a ``trial`` (``lr="auto"``) evaluates and saves nothing."""
    if settings.lr == "auto":
        raise ConfigError("the learning rate must be chosen before training (lr='auto')")
    once = {"eval_strategy": "no", "save_strategy": "no", "load_best_model_at_end": False}
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
        "dataloader_pin_memory": on_cuda(settings),  # pinned pages only help copies to a GPU
        **(once if trial else {}),
    }


def dev_checks(settings: TrainSettings, trial: bool = False) -> list[Any]:
    """The trainer callbacks that score the dev rows (and save a checkpoint) ``evals_per_epoch``
    times an epoch, the epoch's end included (``eval_strategy="epoch"`` scores that one), and
    put back torch's random state after every scoring, so that scoring more often adds points
    to choose from without changing what is trained; a trial scores nothing."""
    if trial:
        return []
    from transformers import TrainerCallback

    class DevChecks(TrainerCallback):
        def __init__(self, per_epoch: int) -> None:
            self.per_epoch, self.points = per_epoch, frozenset[int]()
            self.steps_per_epoch = 0
            self.rng: tuple[Any, Any] | None = None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            self.steps_per_epoch = max(1, state.max_steps // max(1, int(args.num_train_epochs)))
            self.points = within_epoch(self.steps_per_epoch, self.per_epoch)

        def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if state.global_step % self.steps_per_epoch in self.points:
                control.should_evaluate = control.should_save = True
            self.rng = torch_rng()  # scoring draws random numbers: training must not see it

        def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
            if self.rng is not None:
                restore_torch_rng(self.rng)

    return [DevChecks(settings.evals_per_epoch)]


def torch_rng() -> tuple[Any, Any]:
    """Torch's random state (CPU, and every CUDA device's where there is one)."""
    import torch

    cuda = torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None  # type: ignore[no-untyped-call]
    return torch.random.get_rng_state(), cuda


def restore_torch_rng(state: tuple[Any, Any]) -> None:
    import torch

    torch.random.set_rng_state(state[0])
    if state[1] is not None:
        torch.cuda.set_rng_state_all(state[1])


def within_epoch(steps: int, per_epoch: int) -> frozenset[int]:
    """The steps inside an epoch of ``steps`` at which the dev rows are scored, besides its
    end: ``per_epoch - 1`` evenly spaced (fewer when the epoch has fewer steps)."""
    points = {math.ceil(k * steps / per_epoch) for k in range(1, per_epoch)}
    return frozenset(p for p in points if 0 < p < steps)


def _warmup(ratio: float) -> dict[str, Any]:
    """transformers 5 takes the warmup ratio as a float ``warmup_steps``; 4 as ``warmup_ratio``."""
    import transformers

    major = int(transformers.__version__.split(".")[0])
    return {"warmup_steps": ratio} if major >= 5 else {"warmup_ratio": ratio}


def run_trainer(trainer: Any, out: Path, report: Callable[[str], None]) -> float:
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


def trial_rows(train: PairSet, seed: int) -> PairSet:
    """A seeded sample (:data:`TRIAL_SHARE`, at least :data:`TRIAL_MIN_ROWS`) in file order."""
    wanted = min(len(train), max(TRIAL_MIN_ROWS, round(TRIAL_SHARE * len(train))))
    sample = random.Random(seed).sample(range(len(train)), wanted)  # noqa: S311 (not secret)
    return train.subset(sorted(sample))


Trial = Callable[[PairSet, TrainSettings], float]


def pick_lr(settings: TrainSettings, train: PairSet, trial: Trial, report: Callable[[str], None]
            ) -> tuple[TrainSettings, list[dict[str, float]]]:  # fmt: skip
    """``lr="auto"``: one short run per rate of :data:`AUTO_LRS` from the base, each scored on
    the dev rows by ``trial``; the settings with the best rate, and the trials."""
    if settings.lr != "auto":
        return settings, []
    rows = trial_rows(train, settings.seed)
    trials = []
    for lr in AUTO_LRS:
        score = trial(rows, replace(settings, lr=lr, epochs=1))
        trials.append({"lr": lr, "dev": round(float(score), 6)})
        report(f"--lr auto: lr {lr:g}, one pass over {len(rows)} rows: dev {score:.4f}")
    best = max(trials, key=lambda t: t["dev"])
    report(f"--lr auto: training with lr {best['lr']:g}")
    return replace(settings, lr=best["lr"]), trials


def run_trial(trainer: Any, evaluate: Callable[[], float]) -> float:
    with contextlib.redirect_stdout(sys.stderr):
        trainer.train()
    return evaluate()


def snapshot(model: Any) -> dict[str, Any]:
    """The base weights (epoch 0), to start each trial from and to hand back."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def logged_scores(trainer: Any, key: str) -> list[float]:
    """The dev metric at each scored point, in order, from the trainer's log."""
    return [round(float(e[f"eval_{key}"]), 6) for e in trainer.state.log_history
            if f"eval_{key}" in e]  # fmt: skip


def best_logged(trainer: Any, key: str, extras: tuple[str, ...]) -> dict[str, float]:
    """The metrics of the best scored point (the one ``load_best_model_at_end`` keeps)."""
    entries = [e for e in trainer.state.log_history if f"eval_{key}" in e]
    best: dict[str, Any] = max(entries, key=lambda e: float(e[f"eval_{key}"]), default={})
    return keep_metrics({k.removeprefix("eval_"): v for k, v in best.items()}, key, extras)


def conclude(trainer: Any, key: str, extras: tuple[str, ...], before: dict[str, float],
             keep_trained: bool) -> tuple[dict[str, float], list[float], bool]:  # fmt: skip
    """(after, dev scores with the base as point 0, whether the trained model is kept):
    kept when a scored point beats the base on the dev metric, or with ``keep_trained``."""
    scores = [before[key], *logged_scores(trainer, key)]
    if keep_trained or any(s > before[key] for s in scores[1:]):
        return best_logged(trainer, key, extras) or dict(before), scores, True
    return dict(before), scores, False


def save_result(kept: bool, base: str, out: Path, save: Callable[[], None]) -> None:
    """Write the model to ``out``: the trained one (``save``), or when the base is handed back
    its folder copied file for file (a model saved again by sentence-transformers can read
    differently, e.g. its prompts); a base that is no folder is saved from memory (``save``,
    the caller having restored the epoch-0 weights)."""
    folder = Path(base)
    if kept or not folder.is_dir() or folder.resolve() == out.resolve():
        save()
        return
    out.mkdir(parents=True, exist_ok=True)
    for weights in ("model.safetensors", "pytorch_model.bin"):  # an earlier run's, not the base's
        if not (folder / weights).exists():
            (out / weights).unlink(missing_ok=True)
    shutil.copytree(folder, out, dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("checkpoints", RECORD_FILE))  # fmt: skip


def write_record(out: Path, base: str, kind: str, train: PairSet, dev: PairSet,
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
