"""index: encode and index files or stdin into an index (local engine or Ray)."""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import click

from es_semantic.cli.common import (
    client,
    connection_options,
    encoder,
    handle_errors,
    model_options,
    say_int8_hint,
    settings,
    terminate_as_interrupt,
)
from es_semantic.cli.indexing_cmds import contract_options, creation_options, parse_metadata_fields
from es_semantic.cli.sparse_options import (
    index_sparse_options,
    sparse_leg_options,
    sparse_model_option,
)
from es_semantic.encoding.images import is_clip_folder
from es_semantic.errors import (
    ConfigError,
    IndexingError,
    IndexingInterrupted,
    InputError,
    MissingDependencyError,
)
from es_semantic.indexing.images import image_files, read_images
from es_semantic.indexing.indexer import Indexer
from es_semantic.indexing.options import DedupeMode, IndexOptions
from es_semantic.indexing.readers import (
    INPUT_FORMATS,
    InputFormat,
    count_inputs,
    detect_format,
    read_path,
)
from es_semantic.types import IndexReport

IMAGE_BATCH = 32  # images per batch: the bytes a run holds are a few batches of them


@click.command("index")
@click.argument("index")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice([*INPUT_FORMATS, "images"]),
    help="input format [from the extension; stdin: jsonl]; images: image files and folders "
    "(recursive: jpg, png, webp, gif, bmp, tiff) into an image index, with a CLIP --model",
)
@click.option(
    "--text-unit",
    type=click.Choice(["line", "file"]),
    default="line",
    help="text format: one document per line, or per file",
)
@click.option("--id-field", help="field holding the document id [id, or _id; else a content hash]")
@click.option(
    "--text-field",
    "text_fields",
    multiple=True,
    help="text field(s) [title, text]; an image index: its caption field(s), for BM25 [caption]",
)
@click.option(
    "--image-field",
    help="JSONL/CSV/Parquet: the field naming each record's image file (relative to the data "
    "file) for an image index (a CLIP --model) [path]",
)
@click.option(
    "--metadata-field", "metadata_fields", multiple=True, help="filterable field, NAME or NAME:TYPE"
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    help="documents encoded per batch [256; images: 32, which bounds the image bytes held]",
)
@click.option(
    "--dead-letter",
    type=click.Path(dir_okay=False),
    help="JSONL file for failed documents [INDEX.dead.jsonl, written on failure]",
)
@click.option("--report-json", type=click.Path(dir_okay=False), help="write the run report here")
@click.option("--quiet", is_flag=True, help="no progress bar or summary")
@click.option(
    "--delete-missing",
    is_flag=True,
    help="after indexing, delete documents whose ids were not in the input",
)
@click.option(
    "--dry-run", is_flag=True, help="with --delete-missing: only list what it would delete"
)
@click.option(
    "--dedupe-threshold",
    type=float,
    help="a document whose nearest neighbour (in the index or earlier in this run) is at least "
    "this similar is a near-duplicate (cosine for cosine/dot_product indices)",
)
@click.option(
    "--dedupe",
    type=click.Choice(["flag", "skip"]),
    default="flag",
    show_default=True,
    help="near-duplicates: index with duplicate_of=ID (filterable), or leave out; both counted",
)
@click.option(
    "--duplicates-file",
    type=click.Path(dir_okay=False),
    help="with --dedupe skip: JSONL of the documents left out [INDEX.duplicates.jsonl]",
)
@click.option(
    "--senders",
    type=click.IntRange(1, 32),
    default=2,
    show_default=True,
    help="bulk requests in flight at once (raise it when a GPU encodes faster than one sends)",
)
@click.option(
    "--vector-format",
    type=click.Choice(["auto", "json", "base64"]),
    default="auto",
    show_default=True,
    help="vectors in bulk bodies: base64 float32 where the cluster accepts it (9.3+), else JSON",
)
@click.option(
    "--engine",
    type=click.Choice(["local", "ray"]),
    default="local",
    show_default=True,
    help="encode in this process, or in actors on a Ray cluster (pip install 'es-semantic[ray]')",
)
@click.option(
    "--ray-address",
    help="--engine ray: the cluster to join, ADDR or auto [RAY_ADDRESS, else a new local Ray]",
)
@click.option("--workers", type=click.IntRange(1, 100_000), help="--engine ray: encoder actors [1]")
@click.option(
    "--gpus-per-worker",
    type=click.FloatRange(0, 64),
    help="--engine ray: GPUs per actor (fractions share one GPU) [0]",
)
@click.option(
    "--cpus-per-worker", type=click.FloatRange(0.01, 4096), help="--engine ray: CPUs per actor [1]"
)
@creation_options
@sparse_model_option(
    "the learned sparse leg's model: a new index gets a sparse_vector leg; an index with one "
    "needs its model [ES_SEMANTIC_SPARSE_MODEL]"
)
@sparse_leg_options
@connection_options
@handle_errors
def index_cmd(
    index: str,
    paths: tuple[str, ...],
    fmt: str | None,
    text_unit: str,
    id_field: str | None,
    text_fields: tuple[str, ...],
    image_field: str | None,
    metadata_fields: tuple[str, ...],
    batch_size: int | None,
    dead_letter: str | None,
    report_json: str | None,
    quiet: bool,
    delete_missing: bool,
    dry_run: bool,
    dedupe_threshold: float | None,
    dedupe: str,
    duplicates_file: str | None,
    senders: int,
    vector_format: str,
    engine: str,
    ray_address: str | None,
    workers: int | None,
    gpus_per_worker: float | None,
    cpus_per_worker: float | None,
    similarity: str | None,
    index_options: str | None,
    analyzer: str | None,
    sparse_model: str | None,
    sparse_query_mode: str | None,
    sparse_prune: bool | None,
    **options: Any,
) -> None:
    """Encode and index PATH... (files, a BEIR folder, or - for stdin) into INDEX.

    Creates INDEX when missing; skips documents whose content is unchanged; every failed
    document goes to the dead-letter file. Exit code 1 when any document failed.
    --delete-missing then removes documents the input no longer has (never after a run with
    failures: a broken line must not delete its document); --dry-run lists them instead.
    """
    if dry_run and not delete_missing:
        raise InputError("--dry-run goes with --delete-missing (indexing itself has no dry run)")
    images = fmt == "images" or image_field is not None
    if fmt != "images":
        check_inputs(paths, cast("InputFormat | None", fmt))
    ray_options = {
        "ray_address": ray_address,
        "workers": workers,
        "gpus_per_worker": gpus_per_worker,
        "cpus_per_worker": cpus_per_worker,
    }
    given = [f"--{k.replace('_', '-')}" for k, v in ray_options.items() if v is not None]
    if given and engine != "ray":
        raise click.UsageError(f"{', '.join(given)} go with --engine ray")
    creation_opts = contract_options(
        similarity, index_options, analyzer, parse_metadata_fields(metadata_fields), text_fields,
        options,
    )  # fmt: skip
    state = settings(click.get_current_context(), options)
    run = IndexOptions.of(
        id_field=id_field,
        batch_size=batch_size or (IMAGE_BATCH if images else 256),
        image_field=image_field,
        dead_letter=dead_letter or f"{index}.dead.jsonl",
        progress=not quiet,
        senders=senders,
        vector_format=vector_format,
        track_ids=delete_missing,
        dedupe_threshold=dedupe_threshold,
        dedupe=cast(DedupeMode, dedupe),
        duplicates_file=duplicates_file or f"{index}.duplicates.jsonl",
        **index_sparse_options(state, sparse_model, sparse_query_mode, sparse_prune),
        **creation_opts,
    )
    if engine == "ray" and (images or is_clip_folder(state.model())):
        raise click.UsageError(
            "images (a CLIP model) are indexed by the local engine only: drop --engine ray "
            "(--engine local)"
        )
    if engine == "ray":
        try:
            run.refuse_local_only()
        except ConfigError as exc:
            raise click.UsageError(str(exc)) from None
        with reporting_a_stop(report_json):
            report = _index_on_ray(state, index, paths, fmt, text_unit, ray_options, run)
        _finish_report(report, report_json, quiet)
        return
    enc = encoder(state)
    if not quiet:
        say_int8_hint(state, enc)
    if images and getattr(enc.config, "modality", "text") == "text":
        raise InputError(
            f"--format images and --image-field need a CLIP model: --model FOLDER (a CLIP "
            f"folder, sentence-transformers or Hugging Face layout); {enc.config.model_name} "
            "encodes text only"
        )
    indexer = Indexer.from_options(client(state), index, enc, run)
    spec = indexer.field_spec()
    if fmt == "images":
        records: Iterator[Any] = read_images(paths, spec)
        total = None if quiet else sum(1 for _ in image_files(paths))  # one walk, no reads
    else:
        records = itertools.chain.from_iterable(
            read_path(path, cast("InputFormat | None", fmt), spec, text_unit) for path in paths
        )
        total = None if quiet else count_inputs(paths, cast("InputFormat | None", fmt), text_unit)
    with reporting_a_stop(report_json):
        report = indexer.index(records, total=total)
    if delete_missing:
        _delete_missing(indexer, report, dry_run)
    _finish_report(report, report_json, quiet)


def check_inputs(paths: tuple[str, ...], fmt: InputFormat | None) -> None:
    """Before anything starts (a model loaded, an index created): every PATH's format is
    known and can be read here, or one line says what to do."""
    for path in paths:
        if (fmt or detect_format(path)) == "parquet":
            try:
                import pyarrow.parquet  # noqa: F401
            except ImportError:
                raise MissingDependencyError("pyarrow", "parquet", "reading Parquet") from None


def _index_on_ray(
    state: Any,
    index: str,
    paths: tuple[str, ...],
    fmt: str | None,
    text_unit: str,
    ray_options: dict[str, Any],
    run: IndexOptions,
) -> IndexReport:
    """The same run on a Ray cluster: actors encode and write, this process adds up."""
    from es_semantic.distributed import connect, index_files

    connect(ray_options["ray_address"])
    return index_files(
        list(paths),
        state.es_config(),
        index,
        state.model(),
        fmt=cast("InputFormat | None", fmt),
        text_unit=text_unit,
        encoder_options=model_options(state),
        workers=ray_options["workers"] or 1,
        cpus_per_worker=ray_options["cpus_per_worker"] or 1.0,
        gpus_per_worker=ray_options["gpus_per_worker"] or 0.0,
        options=run,
    )


def _delete_missing(indexer: Indexer, report: IndexReport, dry_run: bool) -> None:
    from es_semantic.indexing.deletion import delete_missing

    if report.failed and not dry_run:
        click.echo(
            f"--delete-missing skipped: {report.failed} input documents failed, so their "
            "ids are unknown; fix them (see the dead-letter file) and re-run",
            err=True,
        )
        dry_run = True
    result = delete_missing(  # the index written to: behind an alias, its write index only
        indexer.es, indexer.target, indexer.seen_ids or set(), dry_run=dry_run
    )
    verb = "would delete" if dry_run else "deleted"
    count = result.matched if dry_run else result.deleted
    click.echo(f"{indexer.index_name}: {verb} {count} documents missing from the input", err=True)
    for doc_id in result.sample_ids:
        click.echo(f"  {doc_id}", err=True)
    if result.failures:
        click.echo(result.failed_line(), err=True)
        raise click.exceptions.Exit(1)


@contextlib.contextmanager
def reporting_a_stop(report_json: str | None) -> Iterator[None]:
    """SIGTERM stops the run as Ctrl-C does; a run that stops still writes its report (every
    record read: indexed, skipped or a dead letter) and its summary before the error line."""
    try:
        with terminate_as_interrupt():
            yield
    except (IndexingError, IndexingInterrupted) as exc:
        if exc.report is not None:
            _write_report(exc.report, report_json)
            click.echo(_summary(exc.report), err=True)
        raise


def _write_report(report: IndexReport, report_json: str | None) -> None:
    if report_json:
        Path(report_json).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")


def _finish_report(report: IndexReport, report_json: str | None, quiet: bool) -> None:
    _write_report(report, report_json)
    summary = _summary(report)
    if not quiet or report.failed:
        click.echo(summary, err=bool(report.failed))
    if report.failed:
        click.get_current_context().exit(1)


def _summary(report: IndexReport) -> str:
    rate = report.total / report.seconds if report.seconds else 0.0
    chunked = (
        f", {report.chunked} chunked into {report.passages} passages" if report.passages else ""
    )
    summary = (
        f"{report.index}: indexed {report.indexed}, skipped {report.skipped} unchanged, "
        f"failed {report.failed}; encoded {report.encoded} ({report.truncated} truncated"
        f"{chunked}) in {report.seconds:.1f}s, {rate:.1f} docs/s"
    )
    if report.truncated and not report.passages:
        summary += (
            f"; {report.truncated} documents were longer than the model's window and were cut: "
            "index them as passages with --chunk (a new index, or `es-semantic migrate`)"
        )
    if report.flagged or report.deduplicated:
        summary += (
            f"; near-duplicates: {report.flagged} indexed with duplicate_of, "
            f"{report.deduplicated} left out (listed in --report-json)"
        )
    if report.duplicates_file:
        summary += f" and written to {report.duplicates_file}"
    if report.failed:
        summary += f"; failures in {report.dead_letter or 'the report'}"
    return summary
