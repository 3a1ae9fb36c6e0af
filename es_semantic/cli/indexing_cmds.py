"""create-index, index and info."""

from __future__ import annotations

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
    settings,
)
from es_semantic.errors import ConfigError, InputError
from es_semantic.indexing.admin import create_index, index_info
from es_semantic.indexing.dedupe import DedupeMode
from es_semantic.indexing.indexer import Indexer
from es_semantic.indexing.readers import (
    INPUT_FORMATS,
    FieldSpec,
    InputFormat,
    count_inputs,
    read_path,
    read_text_file,
)
from es_semantic.schema.contract import INDEX_OPTIONS, METADATA_TYPES, SIMILARITIES, IndexContract
from es_semantic.types import Document, IndexReport, ReadFailure


def parse_metadata_fields(specs: tuple[str, ...]) -> dict[str, str]:
    """``("lang", "year:long")`` -> ``{"lang": "keyword", "year": "long"}``."""
    out: dict[str, str] = {}
    for spec in specs:
        name, _, kind = spec.partition(":")
        kind = kind or "keyword"
        if not name or kind not in METADATA_TYPES:
            raise InputError(
                f"--metadata-field {spec!r}: use NAME or NAME:TYPE with TYPE one of "
                f"{', '.join(METADATA_TYPES)}"
            )
        out[name] = kind
    return out


def _creation_options(
    similarity: str | None,
    index_options: str | None,
    analyzer: str | None,
    metadata: dict[str, str],
    text_fields: tuple[str, ...],
    options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Contract options for a new index; pops the --chunk* options out of ``options``."""
    chunking = chunking_options(options if options is not None else {})
    return {
        "similarity": similarity,
        "index_options": index_options,
        "analyzer": analyzer,
        "metadata_fields": metadata,
        "text_fields": text_fields or None,
        **chunking,
    }


def chunking_options(options: dict[str, Any]) -> dict[str, Any]:
    """--chunk/--no-chunk, --chunk-tokens, --chunk-overlap -> contract options (popped from
    ``options``); {} when none was given (a new index gets passages, a migration keeps the
    old index's layout)."""
    chunk = options.pop("chunk", None)
    tokens = options.pop("chunk_tokens", None)
    overlap = options.pop("chunk_overlap", None)
    if chunk is False:
        if tokens or overlap is not None:
            raise ConfigError("--chunk-tokens/--chunk-overlap do not go with --no-chunk")
        return {"chunking": "none"}
    if not (chunk or tokens or overlap is not None):
        return {}
    return {"chunking": "nested", "chunk_tokens": tokens, "chunk_overlap": overlap}


creation = [
    click.option("--similarity", type=click.Choice(SIMILARITIES), help="similarity [cosine]"),
    click.option(
        "--index-options",
        type=click.Choice(INDEX_OPTIONS),
        help="dense_vector index type [the cluster's default: int8_hnsw on 8.14+, bbq_hnsw for "
        ">= 384 dims on 9.1+]; int4_* need 8.15, bbq_hnsw/bbq_flat 8.16, bbq_disk 9.2",
    ),
    click.option("--analyzer", help="BM25 analyzer: standard (default), english, cjk, smartcn"),
]
chunking = [
    click.option(
        "--chunk/--no-chunk",
        default=None,
        help="new indices hold documents as passages (nested vectors, the best passage scores "
        "the document; the default); --no-chunk: one vector per document, cut at the model's "
        "window",
    ),
    click.option(
        "--chunk-tokens",
        type=click.IntRange(8, 100_000),
        help="passage length in tokens [128, at most the model's max_length]",
    ),
    click.option(
        "--chunk-overlap",
        type=click.IntRange(0, 50_000),
        help="tokens of whole sentences repeated between passages [32]",
    ),
]


def creation_options(func: Any) -> Any:
    """Add --similarity, --index-options, --analyzer and the --chunk options (new indices)."""
    for option in reversed(creation + chunking):
        func = option(func)
    return func


def chunk_options(func: Any) -> Any:
    """Add --chunk, --chunk-tokens and --chunk-overlap."""
    for option in reversed(chunking):
        func = option(func)
    return func


@click.command("create-index")
@click.argument("index")
@creation_options
@click.option("--text-field", "text_fields", multiple=True, help="BM25 text field [title, text]")
@click.option(
    "--metadata-field",
    "metadata_fields",
    multiple=True,
    help="filterable field, NAME or NAME:TYPE (keyword, long, double, date, boolean)",
)
@click.option("--m", "m", type=click.IntRange(2, 512), help="HNSW graph degree")
@click.option("--ef-construction", type=click.IntRange(10, 3200), help="HNSW build beam width")
@click.option("--keep-vectors", is_flag=True, help="keep vectors in _source (default: excluded)")
@click.option("--recreate", is_flag=True, help="DELETE the index first if it exists")
@connection_options
@handle_errors
def create_index_cmd(
    index: str,
    text_fields: tuple[str, ...],
    metadata_fields: tuple[str, ...],
    m: int | None,
    ef_construction: int | None,
    keep_vectors: bool,
    recreate: bool,
    similarity: str | None,
    index_options: str | None,
    analyzer: str | None,
    **options: Any,
) -> None:
    """Create INDEX for the model's contract (never deletes, unless --recreate)."""
    creation_opts = _creation_options(
        similarity, index_options, analyzer, parse_metadata_fields(metadata_fields), text_fields,
        options,
    )  # fmt: skip
    state = settings(click.get_current_context(), options)
    enc = encoder(state)
    contract = IndexContract.from_encoder(
        enc.config,
        keep_vectors_in_source=keep_vectors or None,
        **creation_opts,
    )
    es = client(state)
    if recreate and es.indices.exists(index=index):
        click.echo(f"--recreate: deleting the existing index {index}", err=True)
    created = create_index(
        es, index, contract, recreate=recreate, m=m, ef_construction=ef_construction
    )
    if created:
        c = contract
        click.echo(
            f"created {index}: {c.model_name}, {c.dims}-d {c.similarity}, "
            f"{c.index_options or 'cluster-default index options'}, "
            f"text fields {', '.join(c.text_fields)}{chunking_summary(c)}"
        )
    else:
        click.echo(f"{index} already exists; left unchanged (use --recreate to rebuild it)")


def chunking_summary(contract: IndexContract) -> str:
    if not contract.nested:
        return ""
    return f", passages of {contract.chunk_tokens} tokens (overlap {contract.chunk_overlap})"


@click.command("index")
@click.argument("index")
@click.argument("paths", nargs=-1, required=True)
@click.option(
    "--format",
    "fmt",
    type=click.Choice(INPUT_FORMATS),
    help="input format [from the extension; stdin: jsonl]",
)
@click.option(
    "--text-unit",
    type=click.Choice(["line", "file"]),
    default="line",
    help="text format: one document per line, or per file",
)
@click.option("--id-field", help="field holding the document id [id, or _id; else a content hash]")
@click.option("--text-field", "text_fields", multiple=True, help="text field(s) [title, text]")
@click.option(
    "--metadata-field", "metadata_fields", multiple=True, help="filterable field, NAME or NAME:TYPE"
)
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=256,
    show_default=True,
    help="documents encoded per batch",
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
@connection_options
@handle_errors
def index_cmd(
    index: str,
    paths: tuple[str, ...],
    fmt: str | None,
    text_unit: str,
    id_field: str | None,
    text_fields: tuple[str, ...],
    metadata_fields: tuple[str, ...],
    batch_size: int,
    dead_letter: str | None,
    report_json: str | None,
    quiet: bool,
    delete_missing: bool,
    dry_run: bool,
    dedupe_threshold: float | None,
    dedupe: str,
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
    ray_options = {
        "ray_address": ray_address,
        "workers": workers,
        "gpus_per_worker": gpus_per_worker,
        "cpus_per_worker": cpus_per_worker,
    }
    given = [f"--{k.replace('_', '-')}" for k, v in ray_options.items() if v is not None]
    if given and engine != "ray":
        raise click.UsageError(f"{', '.join(given)} go with --engine ray")
    creation_opts = _creation_options(
        similarity, index_options, analyzer, parse_metadata_fields(metadata_fields), text_fields,
        options,
    )  # fmt: skip
    state = settings(click.get_current_context(), options)
    run_options: dict[str, Any] = {
        "id_field": id_field,
        "batch_size": batch_size,
        "dead_letter": dead_letter or f"{index}.dead.jsonl",
        "progress": not quiet,
        "senders": senders,
        "vector_format": vector_format,
        **creation_opts,
    }
    if engine == "ray":
        if delete_missing or dedupe_threshold is not None:
            raise click.UsageError(
                "--delete-missing and --dedupe-threshold need the whole run in one process: "
                "use --engine local"
            )
        report = _index_on_ray(state, index, paths, fmt, text_unit, ray_options, run_options)
        _finish_report(report, report_json, quiet)
        return
    enc = encoder(state)
    indexer = Indexer(
        client(state),
        index,
        enc,
        track_ids=delete_missing,
        dedupe_threshold=dedupe_threshold,
        dedupe=cast(DedupeMode, dedupe),
        **run_options,
    )
    spec = indexer.field_spec()
    records = itertools.chain.from_iterable(_read(path, fmt, text_unit, spec) for path in paths)
    report = indexer.index(
        records,
        total=None if quiet else count_inputs(paths, cast("InputFormat | None", fmt), text_unit),
    )
    if delete_missing:
        _delete_missing(indexer, report, dry_run)
    _finish_report(report, report_json, quiet)


def _index_on_ray(
    state: Any,
    index: str,
    paths: tuple[str, ...],
    fmt: str | None,
    text_unit: str,
    ray_options: dict[str, Any],
    run_options: dict[str, Any],
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
        **run_options,
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
    result = delete_missing(
        indexer.es, indexer.index_name, indexer.seen_ids or set(), dry_run=dry_run
    )
    verb = "would delete" if dry_run else "deleted"
    count = result.matched if dry_run else result.deleted
    click.echo(f"{indexer.index_name}: {verb} {count} documents missing from the input", err=True)
    for doc_id in result.sample_ids:
        click.echo(f"  {doc_id}", err=True)


def _read(
    path: str, fmt: str | None, text_unit: str, spec: FieldSpec
) -> Iterator[Document | ReadFailure]:
    if fmt == "text" and text_unit == "file" and path != "-":
        yield read_text_file(path, spec)
        return
    yield from read_path(path, fmt, spec)  # type: ignore[arg-type]


def _finish_report(report: IndexReport, report_json: str | None, quiet: bool) -> None:
    if report_json:
        Path(report_json).write_text(json.dumps(report.to_json(), indent=2), encoding="utf-8")
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
    if report.failed:
        summary += f"; failures in {report.dead_letter or 'the report'}"
    if not quiet or report.failed:
        click.echo(summary, err=bool(report.failed))
    if report.failed:
        click.get_current_context().exit(1)


@click.command("info")
@click.argument("index")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@connection_options
@handle_errors
def info_cmd(index: str, as_json: bool, **options: Any) -> None:
    """Show INDEX's contract (model, pooling, dims, ...), document count and mapping."""
    state = settings(click.get_current_context(), options)
    info = index_info(client(state), index)
    if as_json:
        click.echo(json.dumps(info, indent=2, ensure_ascii=False))
        return
    c = info["contract"]
    click.echo(f"index      {info['index']} ({', '.join(info['indices'])})")
    vectors = f" ({info['vectors']} passage vectors)" if c.get("chunking") == "nested" else ""
    click.echo(f"documents  {info['count']}{vectors}")
    encoded_by = c.get("backend", "torch") + (
        f" {c['quantize']}" if c.get("quantize", "none") != "none" else ""
    )
    click.echo(
        f"model      {c['model_name']} ({c['model_fingerprint']}), encoded with {encoded_by}"
    )
    click.echo(
        f"vectors    {c['dims']}-d {c['similarity']} {info['index_options']['type']} "
        f"({info['index_options']['from']}), pooling "
        f"{c['pooling']}, normalize {c['normalize']}, max_length {c['max_length']}"
    )
    click.echo(f"prefixes   query {c['query_prefix']!r}, document {c['document_prefix']!r}")
    click.echo(f"text       {', '.join(c['text_fields'])} (analyzer {c['analyzer']})")
    chunking = (
        f"passages of {c['chunk_tokens']} tokens, overlap {c['chunk_overlap']} (nested kNN)"
        if c.get("chunking") == "nested"
        else "none (one vector per document)"
    )
    click.echo(f"chunking   {chunking}")
    meta = c["metadata_fields"]
    click.echo(f"metadata   {', '.join(f'{k}:{v}' for k, v in meta.items()) or '-'}")
    mib = info["vector_memory_estimate_bytes"] / 2**20
    click.echo(f"vector RAM ~{mib:.1f} MiB (raw floats + quantized copy, estimate)")


@click.command("delete")
@click.argument("index")
@click.option("--ids", "ids", multiple=True, help="document ids (repeat, or comma-separated)")
@click.option(
    "--query", "queries", multiple=True, help="metadata filter FIELD=VALUE (as search --filter)"
)
@click.option("--dry-run", is_flag=True, help="list what would be deleted, delete nothing")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@connection_options
@handle_errors
def delete_cmd(
    index: str,
    ids: tuple[str, ...],
    queries: tuple[str, ...],
    dry_run: bool,
    as_json: bool,
    **options: Any,
) -> None:
    """Delete documents from INDEX by id or by metadata filter (--dry-run lists them first)."""
    from es_semantic.indexing.deletion import delete_documents
    from es_semantic.schema.filters import parse_cli_filters

    state = settings(click.get_current_context(), options)
    id_list = [i.strip() for chunk in ids for i in chunk.split(",") if i.strip()]
    filters = parse_cli_filters(queries) if queries else None
    report = delete_documents(client(state), index, ids=id_list, filters=filters, dry_run=dry_run)
    if as_json:
        click.echo(json.dumps(report.to_json()))
        return
    verb = "would delete" if dry_run else "deleted"
    count = report.matched if dry_run else report.deleted
    click.echo(f"{index}: {verb} {count} of {report.matched} matching documents")
    for doc_id in report.sample_ids:
        click.echo(f"  {doc_id}")
    if report.matched > len(report.sample_ids):
        click.echo(f"  ... and {report.matched - len(report.sample_ids)} more")
    if report.missing_ids:
        click.echo(f"not found: {', '.join(report.missing_ids[:20])}", err=True)
