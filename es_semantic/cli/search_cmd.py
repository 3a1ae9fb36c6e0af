"""es-semantic search."""

from __future__ import annotations

import json
import shutil
from typing import Any, cast

import click
from click.core import ParameterSource

from es_semantic.cli.common import (
    client,
    connection_options,
    cross_encoder,
    encoder,
    handle_errors,
    settings,
)
from es_semantic.cli.sparse_options import load_sparse, sparse_model_option
from es_semantic.schema.filters import parse_cli_filters
from es_semantic.search.request import DEFAULT_WINDOW, FUSIONS, Fusion, Mode
from es_semantic.search.searcher import Searcher
from es_semantic.types import Hit, SearchResult


@click.command("search")
@click.argument("index")
@click.argument("query", required=False)
@click.option(
    "--mode",
    type=click.Choice(["keyword", "knn", "sparse", "hybrid"]),
    default="hybrid",
    show_default=True,
    help="sparse = the learned sparse leg (an index made with --sparse-model)",
)
@click.option(
    "--legs",
    help="hybrid: the legs to fuse, e.g. keyword,knn,sparse [keyword,knn]; with the sparse leg "
    "fusion is client-side (rrf, weighted or zscore: kNN --alpha, the others share the rest, "
    "adaptive)",
)
@sparse_model_option(
    "the sparse leg's model (the one the index was made with) for sparse "
    "queries [default: found from the index's contract]"
)
@click.option(
    "--fusion",
    type=click.Choice(FUSIONS),
    default="auto",
    show_default=True,
    help="hybrid: auto = the fusion `eval --tune --save` stored for the index (a stored rrf: "
    "the rrf retriever where version and licence allow, 8.14+, enterprise or trial), else "
    "adaptive (keyword + knn) or zscore (with the sparse leg); server = the rrf retriever or an "
    "error; rrf/weighted = client-side; linear = the linear retriever (8.18+, licensed), "
    "else client-side weighted (min-max); adaptive = client-side, per-query leg weights from "
    "each leg's own scores; zscore = client-side weighted, each leg's scores scaled by their "
    "standard deviation instead of their range",
)
@click.option(
    "--alpha",
    type=click.FloatRange(0, 1),
    default=0.5,
    show_default=True,
    help="weighted and zscore fusion: kNN weight (0 keyword only, 1 kNN only)",
)
@click.option("--rank-constant", type=click.IntRange(1), default=60, show_default=True)
@click.option(
    "--window",
    type=click.IntRange(1, 10_000),
    default=DEFAULT_WINDOW,
    show_default=True,
    help="hybrid: candidates per leg before fusion",
)
@click.option("-k", "k", type=click.IntRange(1, 10_000), default=10, show_default=True)
@click.option("--offset", type=click.IntRange(0, 9_999), default=0, help="skip this many hits")
@click.option(
    "--num-candidates", type=click.IntRange(1, 10_000), help="kNN candidates [10*k, >=100]"
)
@click.option(
    "--oversample",
    type=click.FloatRange(1, 10),
    help="kNN rescore_vector oversampling for quantized indices (Elasticsearch 8.18+)",
)
@click.option(
    "--filter",
    "filters",
    multiple=True,
    help="FIELD=VALUE (repeat for OR), FIELD>=V, FIELD<V, FIELD? (exists)",
)
@click.option(
    "--source", "source_fields", multiple=True, help="return only these _source fields (repeat)"
)
@click.option("--exact", is_flag=True, help="kNN by exact script_score scan (selective filters)")
@click.option("--highlight", is_flag=True, help="BM25 highlights in the output")
@click.option("--rerank", "rerank_model", help="cross-encoder model folder to rerank with")
@click.option("--rerank-top", type=click.IntRange(1, 1000), default=20, show_default=True)
@click.option("--rerank-budget-ms", type=click.FloatRange(min=1), help="give up reranking after")
@click.option(
    "--rerank-weight",
    type=click.FloatRange(0, 1),
    help="blend: 0 = first stage only, 1 = cross-encoder only [the index's tuned weight, else 1]",
)
@click.option(
    "--image",
    type=click.Path(dir_okay=False),
    help="an image index: search by this image (kNN on its CLIP vector; with QUERY: hybrid, "
    "QUERY on the caption field)",
)
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts")
@connection_options
@handle_errors
def search_cmd(
    index: str,
    query: str | None,
    mode: str,
    legs: str | None,
    sparse_model: str | None,
    fusion: str,
    alpha: float,
    rank_constant: int,
    window: int,
    k: int,
    offset: int,
    num_candidates: int | None,
    oversample: float | None,
    filters: tuple[str, ...],
    source_fields: tuple[str, ...],
    exact: bool,
    highlight: bool,
    rerank_model: str | None,
    rerank_top: int,
    rerank_budget_ms: float | None,
    rerank_weight: float | None,
    image: str | None,
    as_json: bool,
    **options: Any,
) -> None:
    """Search INDEX for QUERY (keyword, kNN or hybrid; optional cross-encoder rerank).

    An image index (made with a CLIP --model): QUERY finds images by text, --image FILE by an
    image."""
    context = click.get_current_context()
    state = settings(context, options)
    if query is None and image is None:
        raise click.UsageError("give QUERY, or --image FILE (an image index)")
    if image is not None and (rerank_model or highlight):
        raise click.UsageError("--rerank and --highlight go with text queries, not --image")
    parsed_filters = parse_cli_filters(filters)
    reranker = None
    if rerank_model:
        reranker = cross_encoder(state, rerank_model)
    sparse = load_sparse(state, sparse_model)
    enc = encoder(state)
    searcher = Searcher(client(state), index, enc, reranker=reranker,
                        sparse_encoder=sparse)  # fmt: skip
    if image is not None:
        explicit = context.get_parameter_source("mode") is not ParameterSource.DEFAULT
        result = searcher.search_image(
            image, query=query, mode=cast(Mode, mode) if explicit else None, k=k,
            offset=offset, fusion=cast(Fusion, fusion), alpha=alpha, window=window,
            num_candidates=num_candidates, filters=parsed_filters,
            source=list(source_fields) or None, exact=exact,
        )  # fmt: skip
    else:
        result = searcher.search(
            cast(str, query),
            mode=cast(Mode, mode),
            legs=legs.split(",") if legs else None,
            k=k,
            offset=offset,
            fusion=cast(Fusion, fusion),
            alpha=alpha,
            rank_constant=rank_constant,
            window=window,
            num_candidates=num_candidates,
            oversample=oversample,
            filters=parsed_filters,
            source=list(source_fields) or None,
            highlight=highlight,
            exact=exact,
            rerank=reranker is not None,
            rerank_top=rerank_top,
            rerank_budget_ms=rerank_budget_ms,
            rerank_weight=rerank_weight,
        )
    if as_json:
        data = {**result.to_json(), "encoder": enc.config.ran()}  # the backend, precision run
        click.echo(json.dumps(data, ensure_ascii=False))
    else:
        contract = searcher.contract()
        shown = (contract.image_field, *contract.text_fields) if contract.image_field else ()
        click.echo(format_table(result, shown or contract.text_fields, offset))
    for warning in result.warnings:
        click.echo(f"warning: {warning}", err=True)


def snippet(hit: Hit, text_fields: tuple[str, ...], width: int) -> str:
    """One line: the best passage (chunked indices) under the title, else the start of the
    highlight or of the text fields."""
    if hit.passage:
        title = str(hit.source.get(text_fields[0], "")) if len(text_fields) > 1 else ""
        text = f"{title} | {hit.passage}" if title else hit.passage
    elif hit.highlights:
        fragment = next(iter(hit.highlights.values()))[0]
        text = fragment.replace("<em>", "[").replace("</em>", "]")
    else:
        values = [str(hit.source.get(f, "")) for f in text_fields]
        text = " | ".join(v for v in values if v)
    text = " ".join(text.split())
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def format_table(result: SearchResult, text_fields: tuple[str, ...], offset: int = 0) -> str:
    """A readable table: rank, id, score, snippet; then timings."""
    columns = shutil.get_terminal_size((120, 20)).columns
    ids = [h.id for h in result.hits] or ["-"]
    id_width = min(max(len(i) for i in ids), 40)
    lines = [f"{'#':>3}  {'id':<{id_width}}  {'score':>9}  text"]
    for rank, hit in enumerate(result.hits, start=offset + 1):
        room = max(columns - id_width - 20, 20)
        lines.append(
            f"{rank:>3}  {hit.id[:id_width]:<{id_width}}  {hit.score:>9.4f}  "
            f"{snippet(hit, text_fields, room)}"
        )
    if not result.hits:
        lines.append("     (no hits)")
    timing = ", ".join(
        f"{k} {v:.0f} ms" for k, v in result.took_ms.items() if not k.endswith("_server")
    )
    label = result.mode + (f"/{result.fusion}" if result.fusion else "")
    lines.append(f"[{label}{', reranked' if result.reranked else ''}] {timing}")
    return "\n".join(lines)
