"""es-semantic quickstart: a server, a real corpus, and keyword vs kNN vs hybrid side by side."""

from __future__ import annotations

import contextlib
import os
import textwrap
from collections.abc import Iterator
from typing import Any

import click

from es_semantic.cli.common import Settings, connection_options, encoder, handle_errors, settings
from es_semantic.config import ESConfig
from es_semantic.demo.quickstart import DEMO_QUERIES, stdlib_documents
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_client
from es_semantic.indexing.indexer import Indexer
from es_semantic.search.searcher import Searcher
from es_semantic.types import SearchResult

MODES = ("keyword", "knn", "hybrid")


@contextlib.contextmanager
def _server(state: Settings) -> Iterator[tuple[ESConfig, str]]:
    explicit = any(state.values.get(k) for k in ("es_url", "cloud_id"))
    if explicit or os.environ.get("ES_URL") or os.environ.get("ES_CLOUD_ID"):
        config = state.es_config()
        yield config, f"your cluster at {config.display_url()}"
        return
    with resolve_server(env={}) as handle:
        yield handle.config, handle.description


@click.command("quickstart")
@click.option(
    "--limit",
    type=click.IntRange(10),
    default=3000,
    show_default=True,
    help="documents to index (Python standard library docstrings)",
)
@click.option("--index", default="es-semantic-quickstart", show_default=True)
@click.option("-k", "k", type=click.IntRange(1, 10), default=3, show_default=True)
@connection_options
@handle_errors
def quickstart_cmd(limit: int, index: str, k: int, **options: Any) -> None:
    """Start a server (unless ES_URL is set), index Python's docstrings, compare search modes."""
    state = settings(click.get_current_context(), options)
    with _server(state) as (config, description):
        click.echo(f"server: {description}")
        es = make_client(config)
        enc = encoder(state)
        click.echo(f"model:  {enc.config.model_name} ({enc.dim}-d, {enc.config.pooling} pooling)")
        indexer = Indexer(
            es,
            index,
            enc,
            metadata_fields={"module": "keyword", "kind": "keyword"},
            progress=True,
            dead_letter=f"{index}.dead.jsonl",
        )
        report = indexer.index(list(stdlib_documents(limit)))  # a list: the bar shows a total
        click.echo(
            f"index:  {index}: {report.indexed} indexed, {report.skipped} unchanged, "
            f"{report.failed} failed in {report.seconds:.1f}s"
        )
        searcher = Searcher(es, index, enc)
        for query in DEMO_QUERIES:
            results = [searcher.search(query, mode=mode, k=k) for mode in MODES]  # type: ignore[arg-type]
            click.echo(side_by_side(query, results, k))
        es.close()
        click.echo(next_steps(index, config))


def side_by_side(query: str, results: list[SearchResult], k: int, width: int = 38) -> str:
    """Three columns (keyword | knn | hybrid) of the top-k ids with request time."""
    lines = ["", f"query: {query!r}"]
    heads = [
        r.mode + (f"/{r.fusion}" if r.fusion else "") + f" ({r.took_ms.get('total', 0):.0f} ms)"
        for r in results
    ]
    lines.append(" | ".join(h.ljust(width) for h in heads))
    lines.append("-+-".join("-" * width for _ in heads))
    for i in range(k):
        cells = []
        for r in results:
            cell = f"{i + 1}. {r.hits[i].id}" if i < len(r.hits) else ""
            cells.append((cell if len(cell) <= width else cell[: width - 1] + "…").ljust(width))
        lines.append(" | ".join(cells))
    return "\n".join(lines)


def next_steps(index: str, config: ESConfig) -> str:
    local = not config.url or "127.0.0.1" in config.url
    url = "http://localhost:9200" if local else config.display_url()
    return textwrap.dedent(
        f"""
        Try next (on a cluster of yours: docker compose up -d; export ES_URL={url}):
          es-semantic index my-docs docs.jsonl --text-field title --text-field body
          es-semantic search my-docs "your question" --mode hybrid
          es-semantic info my-docs
          es-semantic quickstart --index {index}   # with ES_URL set, the index stays there
        """
    )
