"""es-semantic mcp."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import click

from es_semantic.cli.common import (
    connection_options,
    cross_encoder,
    encoder,
    handle_errors,
    settings,
)
from es_semantic.errors import ConfigError, MissingDependencyError
from es_semantic.service.settings import ServiceConfig

DEFAULTS = ServiceConfig()


@click.command("mcp")
@click.option("--transport", type=click.Choice(["stdio", "http"]), default="stdio",
              show_default=True,
              help="stdio for desktop agents (the agent starts this command); http for hosted "
              "agents (streamable HTTP at /mcp, API keys required)")  # fmt: skip
@click.option("--index", "indices", multiple=True,
              help="an index agents may search (exact name; repeat); at least one")  # fmt: skip
@click.option("--api-key-file", type=click.Path(exists=True, dir_okay=False),
              help="API keys, one a line (http: required; Authorization: Bearer KEY or "
              "X-API-Key)")  # fmt: skip
@click.option("--host", default="127.0.0.1", show_default=True,
              help="http: address to listen on (loopback by default)")  # fmt: skip
@click.option("--port", type=click.IntRange(1, 65535), default=8090, show_default=True)
@click.option("--rerank", "rerank_model", help="cross-encoder folder: lets the tools rerank")
@click.option("--max-k", type=click.IntRange(1, 1000), default=50, show_default=True,
              help="most hits a search may return")  # fmt: skip
@click.option("--max-query-chars", type=click.IntRange(1, 10_000), default=1000,
              show_default=True)  # fmt: skip
@connection_options
@handle_errors
def mcp_cmd(
    transport: str,
    indices: tuple[str, ...],
    api_key_file: str | None,
    host: str,
    port: int,
    rerank_model: str | None,
    max_k: int,
    max_query_chars: int,
    **options: Any,
) -> None:
    """Serve search tools to agents over the Model Context Protocol (stdio or HTTP).

    Tools: search (plain text, mode, k, metadata filters, rerank; hits with the matched
    passage and per-leg ranks), get_document, list_indices (contracts and metadata values),
    explain. Read-only, only the --index names, every input and result capped.
    """
    try:
        from es_semantic.mcp_server.limits import McpLimits
        from es_semantic.mcp_server.run import McpOptions, serve
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "mcp", "mcp", "es-semantic mcp") from exc
    state = settings(click.get_current_context(), options)
    keys = read_api_keys(api_key_file)
    if transport == "http" and not keys:
        raise ConfigError("--transport http needs --api-key-file FILE (API keys, one a line)")
    mcp_options = McpOptions(
        ServiceConfig(indices=indices, api_keys=keys),
        McpLimits(max_k=max_k, max_query_chars=max_query_chars), host=host, port=port,
    )  # fmt: skip
    es_config = state.es_config()
    reranker = cross_encoder(state, rerank_model) if rerank_model else None
    model = encoder(state)
    if transport == "http":
        click.echo(f"es-semantic MCP server on http://{host}:{port}/mcp", err=True)
    asyncio.run(serve("http" if transport == "http" else "stdio", es_config, model,
                      mcp_options, reranker))  # fmt: skip


def read_api_keys(path: str | None) -> tuple[str, ...]:
    """The keys of ``--api-key-file``, one a line; an empty file is an error."""
    if not path:
        return ()
    keys = tuple(k.strip() for k in Path(path).read_text().splitlines() if k.strip())
    if not keys:
        raise ConfigError(f"--api-key-file {path} holds no key")
    return keys
