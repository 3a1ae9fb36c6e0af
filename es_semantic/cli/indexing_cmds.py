"""create-index, index and info."""

from __future__ import annotations

import json
from typing import Any

import click

from es_semantic.cli.common import (
    client,
    connection_options,
    encoder,
    handle_errors,
    settings,
)
from es_semantic.cli.sparse_options import leg_options, sparse_leg_options, sparse_model_option
from es_semantic.errors import ConfigError, InputError
from es_semantic.indexing.admin import create_index, index_info
from es_semantic.schema.contract import (
    INDEX_OPTIONS,
    METADATA_TYPES,
    SIMILARITIES,
    IndexContract,
    SparseLeg,
)
from es_semantic.schema.tuning import TUNING_KEY, Tuning


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


def contract_options(
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
@sparse_model_option("a learned sparse leg (sparse_vector) made with this SPLADE-family model")
@sparse_leg_options
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
    sparse_model: str | None,
    sparse_query_mode: str | None,
    sparse_prune: bool | None,
    **options: Any,
) -> None:
    """Create INDEX for the model's contract (never deletes, unless --recreate)."""
    creation_opts = contract_options(
        similarity, index_options, analyzer, parse_metadata_fields(metadata_fields), text_fields,
        options,
    )  # fmt: skip
    state = settings(click.get_current_context(), options)
    enc = encoder(state)
    contract = IndexContract.from_encoder(
        enc.config,
        keep_vectors_in_source=keep_vectors or None,
        sparse=sparse_leg(sparse_model, sparse_query_mode, sparse_prune),
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
            + (f", sparse leg {c.sparse.model_name}" if c.sparse else "")
        )
    else:
        click.echo(f"{index} already exists; left unchanged (use --recreate to rebuild it)")


def sparse_leg(model: str | None, query_mode: str | None, prune: bool | None) -> SparseLeg | None:
    """The sparse leg of ``--sparse-model`` (read from its folder; no weights loaded)."""
    if not model:
        return None
    from es_semantic.encoding.sparse import describe_sparse

    return SparseLeg.from_model(describe_sparse(model, query_mode=query_mode), **leg_options(prune))


def chunking_summary(contract: IndexContract) -> str:
    if not contract.nested:
        return ""
    return f", passages of {contract.chunk_tokens} tokens (overlap {contract.chunk_overlap})"


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
    encoded_by = (
        c.get("backend", "torch")
        + (f" {c['quantize']}" if c.get("quantize", "none") != "none" else "")
        + f" at {c.get('precision', 'float32')}"
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
    if c.get("image_field"):  # an image index (#32)
        click.echo(f"images     {c.get('modality')}, path in {c['image_field']!r}")
    chunking = (
        f"passages of {c['chunk_tokens']} tokens, overlap {c['chunk_overlap']} (nested kNN)"
        if c.get("chunking") == "nested"
        else "none (one vector per document)"
    )
    click.echo(f"chunking   {chunking}")
    click.echo(f"sparse     {sparse_summary(c.get('sparse'))}")
    meta = c["metadata_fields"]
    click.echo(f"metadata   {', '.join(f'{k}:{v}' for k, v in meta.items()) or '-'}")
    mib = info["vector_memory_estimate_bytes"] / 2**20
    click.echo(f"vector RAM ~{mib:.1f} MiB (raw floats + quantized copy, estimate)")
    tuning = Tuning.from_meta({TUNING_KEY: info.get("tuning")})
    click.echo(f"tuned      {tuning.summary() if tuning else '- (eval --tune --save stores it)'}")


def sparse_summary(leg: dict[str, Any] | None) -> str:
    """``info``'s line on the sparse leg."""
    if not leg:
        return "- (create-index --sparse-model adds a learned sparse leg)"
    prune = "pruned queries" if leg.get("prune") else "no pruning"
    return (
        f"{leg['model_name']} ({leg['model_fingerprint']}) in {leg['field']!r}, one vector per "
        f"{leg.get('layout', 'document')}, {leg.get('pooling')}/{leg.get('activation')}, "
        f"queries by {leg.get('query_mode')}, {prune}"
        + (f", model from {leg['model_path']}" if leg.get("model_path") else "")
    )


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
