"""es-semantic finetune / finetune-reranker: train on your own pairs (the ``train`` extra)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

import click

from es_semantic.cli.common import client, connection_options, encoder, handle_errors, settings
from es_semantic.errors import ConfigError
from es_semantic.training.reranker import RERANKER_DEFAULTS
from es_semantic.training.run import AUTO_LRS, EVALS_PER_EPOCH, TrainSettings

F = TypeVar("F", bound=Callable[..., Any])


def learning_rate(ctx: click.Context, param: click.Parameter, value: Any) -> float | str:
    """--lr: a positive number, or ``auto`` (short trials on the dev rows pick one)."""
    if value == "auto" or isinstance(value, float):
        return str(value) if value == "auto" else value
    try:
        rate = float(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is neither a number nor 'auto'") from None
    if not rate > 0:
        raise click.BadParameter(f"{value!r} must be above 0 (or 'auto')")
    return rate


def _common(
    epochs: int = TrainSettings.epochs,
    batch_size: int = TrainSettings.batch_size,
    lr: float | str = TrainSettings.lr,
) -> Callable[[F], F]:
    """The options both commands share, with each command's training defaults."""

    def apply(func: F) -> F:
        for option in reversed(_options(epochs, batch_size, lr)):
            func = option(func)
        return func

    return apply


def _options(epochs: int, batch_size: int, lr: float | str) -> list[Any]:
    return [
        click.option(
            "--base",
            help="model to start from [default: --model, else the packaged all-MiniLM-L6-v2]",
        ),
        click.option(
            "--train",
            "train_file",
            type=click.Path(exists=True, dir_okay=False),
            help="JSONL or TSV/CSV of training pairs",
        ),
        click.option(
            "--dev",
            "dev_file",
            type=click.Path(exists=True, dir_okay=False),
            help="dev pairs (same columns); default: 10% cut from --train",
        ),
        click.option(
            "--out",
            required=True,
            type=click.Path(file_okay=False),
            help="folder for the trained model (re-run to resume)",
        ),
        click.option("--epochs", type=click.IntRange(1), default=epochs, show_default=True),
        click.option("--batch-size", type=click.IntRange(1), default=batch_size, show_default=True),
        click.option(
            "--lr",
            metavar="LR|auto",
            default=str(lr) if lr == "auto" else f"{lr:g}",
            callback=learning_rate,
            show_default=True,
            help="learning rate, or auto: a short trial of "
            f"{', '.join(f'{r:g}' for r in AUTO_LRS)} on a quarter of the rows, the best on "
            "the dev rows used",
        ),
        click.option(
            "--keep-trained",
            is_flag=True,
            help="save the best point even when it does not beat the base on the dev rows "
            "(default: the base is saved then, and the report says so)",
        ),
        click.option(
            "--evals-per-epoch",
            type=click.IntRange(1),
            default=EVALS_PER_EPOCH,
            show_default=True,
            help="score the dev rows this often an epoch (a checkpoint each time); the best "
            "point is kept",
        ),
        click.option("--max-length", type=click.IntRange(8), help="tokens per text"),
        click.option("--seed", type=int, default=42, show_default=True),
        click.option("--fp16", is_flag=True, help="mixed precision (CUDA)"),
        click.option(
            "--hard-negatives-from",
            "negatives_index",
            help="mine negatives for (query, positive) rows from this index's keyword "
            "and kNN legs, positives excluded",
        ),
        click.option("--json", "as_json", is_flag=True, help="print the report as JSON"),
    ]


@click.command("finetune")
@_common()
@click.option(
    "--loss",
    type=click.Choice(["auto", "cosine", "cosent", "mnrl", "contrastive"]),
    default="auto",
    show_default=True,
    help="auto: for scored pairs a short trial of cosent and cosine (the better on dev trains), "
    "contrastive for labelled, MNRL for queries",
)
@click.option("--matryoshka", help="also train truncated vectors, e.g. 384,256,128")
@click.option(
    "--from-index",
    "from_index",
    help="no pairs: self-supervised (anchor, positive) pairs from this index",
)
@click.option("--anchor-field", default="title", show_default=True)
@click.option("--positive-field", default="text", show_default=True)
@click.option(
    "--limit",
    type=click.IntRange(10),
    default=100_000,
    show_default=True,
    help="with --from-index: documents read at most",
)
@connection_options
@handle_errors
def finetune_cmd(
    loss: str,
    matryoshka: str | None,
    from_index: str | None,
    anchor_field: str,
    positive_field: str,
    limit: int,
    **options: Any,
) -> None:
    """Fine-tune a bi-encoder on your pairs; the best epoch on the dev rows is saved to --out.

    Scored pairs (sentence1, sentence2, score) train with CoSENT or the cosine loss (with
    --loss auto, the better of a short trial of each on the dev rows), labelled pairs (label
    0/1) with a contrastive loss, (query, positive[, negative...]) with in-batch negatives (MNRL).
    The folder loads in Encoder and records its base model, data hashes, loss and settings.
    """
    from es_semantic.training.data import read_pairs
    from es_semantic.training.finetune import finetune
    from es_semantic.training.mining import pairs_from_index

    run = _Run(options)
    if from_index:
        if run.train_file:
            raise ConfigError("give --train FILE or --from-index INDEX, not both")
        train = pairs_from_index(client(run.state), from_index, anchor_field, positive_field, limit)
    elif run.train_file:
        train = read_pairs(run.train_file)
    else:
        raise ConfigError("finetune needs --train FILE (or --from-index INDEX)")
    train = run.mined(train)
    dims = [int(d) for d in matryoshka.split(",")] if matryoshka else []
    report = finetune(
        run.base(),
        train,
        run.out,
        dev=run.dev(read_pairs),
        loss=loss,
        settings=run.train_settings(TrainSettings, matryoshka=dims),
        report=run.say,
        progress=not run.as_json,
    )
    run.show(report)


@click.command("finetune-reranker")
@_common(**RERANKER_DEFAULTS)
@connection_options
@handle_errors
def finetune_reranker_cmd(**options: Any) -> None:
    """Train a cross-encoder reranker on (query, passage, label) or (query, positive) rows.

    Negatives come from the rows, or are mined with --hard-negatives-from INDEX. The folder
    loads in CrossEncoder (and `search --rerank DIR`).
    """
    from es_semantic.training.data import read_pairs
    from es_semantic.training.reranker import train_reranker

    run = _Run(options)
    if not run.train_file:
        raise ConfigError("finetune-reranker needs --train FILE")
    train = run.mined(read_pairs(run.train_file))
    report = train_reranker(
        run.base(),
        train,
        run.out,
        dev=run.dev(read_pairs),
        settings=run.train_settings(TrainSettings),
        report=run.say,
        progress=not run.as_json,
    )
    run.show(report)


class _Run:
    """The options both commands share, and their output."""

    def __init__(self, options: dict[str, Any]) -> None:
        self.base_model = options.pop("base")
        self.train_file, self.dev_file = options.pop("train_file"), options.pop("dev_file")
        self.out, self.as_json = options.pop("out"), options.pop("as_json")
        self.negatives_index = options.pop("negatives_index")
        self.values = {
            k: options.pop(k)
            for k in (
                "epochs",
                "batch_size",
                "lr",
                "max_length",
                "seed",
                "fp16",
                "keep_trained",
                "evals_per_epoch",
            )
        }
        self.state = settings(click.get_current_context(), options)

    def base(self) -> str:
        if self.base_model:
            return str(self.base_model)
        model = self.state.model()
        if model:
            return model
        from es_semantic.encoding.model_folder import default_model_path

        return str(default_model_path())

    def dev(self, read: Any) -> Any:
        return read(self.dev_file) if self.dev_file else None

    def train_settings(self, kind: Any, **extra: Any) -> Any:
        device = self.state.values.get("device")
        return kind(device=device, **self.values, **extra)

    def mined(self, train: Any) -> Any:
        if not self.negatives_index:
            return train
        if train.kind != "queries":
            raise ConfigError("--hard-negatives-from needs (query, positive) rows")
        from es_semantic.search.searcher import Searcher
        from es_semantic.training.mining import mine_hard_negatives

        searcher = Searcher(client(self.state), self.negatives_index, encoder(self.state))
        self.say(f"mining hard negatives for {len(train)} queries from {self.negatives_index}")
        return mine_hard_negatives(searcher, train)

    def say(self, message: str) -> None:
        click.echo(message, err=True)

    def show(self, report: Any) -> None:
        if self.as_json:
            click.echo(json.dumps(report.to_json(), indent=2))
            return
        click.echo(
            f"{report.loss}: {report.train_rows} training rows, {report.dev_rows} dev rows "
            f"({report.dev_source}); {report.seconds_per_epoch:.1f} s per epoch"
        )
        for tried in report.loss_trials:
            click.echo(f"--loss auto trial: {tried['loss']}: dev {tried['dev']:.4f}")
        for trial in report.lr_trials:
            click.echo(f"--lr auto trial: lr {trial['lr']:g}: dev {trial['dev']:.4f}")
        scored = ", ".join(f"{s:.4f}" for s in report.dev_scores[1:])
        click.echo(f"lr {report.lr:g}; dev {report.metric}: base {report.dev_scores[0]:.4f}, "
                   f"then {scored}")  # fmt: skip
        click.echo(f"{'dev metric':<28} {'before':>9} {'after':>9}")
        for name in report.after:
            before = report.before.get(name, float("nan"))
            click.echo(f"{name:<28} {before:9.4f} {report.after[name]:9.4f}")
        if report.kept == "base":
            click.echo(f"no scored point beat the base on the dev rows: the BASE model was saved "
                       f"to {report.out} (--keep-trained saves the best point anyway)")  # fmt: skip
        else:
            click.echo(f"saved to {report.out}")
