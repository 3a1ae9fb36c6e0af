"""Run the MCP server: over stdio (desktop agents) or streamable HTTP (hosted agents, API keys
required), with the async client made inside the serving loop and closed when it ends."""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any, Literal

from es_semantic.elastic.client import check_async_client, make_async_client
from es_semantic.errors import ConfigError, MissingDependencyError
from es_semantic.mcp_server.limits import McpLimits
from es_semantic.mcp_server.server import build_server
from es_semantic.mcp_server.tools import SearchTools
from es_semantic.redact import RedactingFilter
from es_semantic.service.settings import ServiceConfig

if TYPE_CHECKING:
    from es_semantic.config import ESConfig
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.reranker import CrossEncoder

Transport = Literal["stdio", "http"]
MCP_PATH = "/mcp"
LOGGERS = ("mcp", "es_semantic", "uvicorn", "uvicorn.error", "uvicorn.access")


@dataclasses.dataclass(frozen=True)
class McpOptions:
    """How the server runs: what it serves (``service``: the allow-list, API keys, body and
    connection limits of ``serve``) and the tools' caps."""

    service: ServiceConfig
    limits: McpLimits = dataclasses.field(default_factory=McpLimits)
    host: str = "127.0.0.1"
    port: int = 8090

    def __post_init__(self) -> None:
        if not self.service.indices:
            raise ConfigError("name the indices agents may search: --index INDEX (repeatable)")


@contextlib.asynccontextmanager
async def running_tools(
    es_config: ESConfig, encoder: Encoder, reranker: CrossEncoder | None, options: McpOptions
) -> AsyncIterator[SearchTools]:
    """The tools on an async client checked to answer (closed at the end); every secret the
    server knows is masked in its loggers meanwhile."""
    masking = RedactingFilter([*es_config.secrets(), *options.service.api_keys])
    if not logging.getLogger().handlers:  # else the SDK's server adds one after the masking
        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    masked: list[logging.Filterer] = [logging.getLogger(n) for n in LOGGERS]
    masked += logging.getLogger().handlers  # a logger's filters miss its children's records
    for where in masked:
        where.addFilter(masking)
    aes = make_async_client(es_config)
    try:
        await check_async_client(aes, es_config)
        yield SearchTools(aes, encoder, options.service.indices, reranker=reranker,
                          limits=options.limits)  # fmt: skip
    finally:
        await aes.close()
        for where in masked:
            where.removeFilter(masking)


async def serve(
    transport: Transport,
    es_config: ESConfig,
    encoder: Encoder,
    options: McpOptions,
    reranker: CrossEncoder | None = None,
) -> None:
    """Serve until stdin closes (stdio) or the process is stopped (http)."""
    secrets = [*es_config.secrets(), *options.service.api_keys]
    async with running_tools(es_config, encoder, reranker, options) as tools:
        server = build_server(tools, secrets)
        if transport == "stdio":
            await server.run_stdio_async()
            return
        await _serve_http(server, options, secrets)


def http_app(server: Any, options: McpOptions, secrets: list[str]) -> Any:
    """The streamable-HTTP app at ``/mcp`` behind ``serve``'s guard (API keys, body limit,
    unhandled errors logged redacted)."""
    try:
        from es_semantic.service.guard import Guard
        from es_semantic.service.metrics import ServiceMetrics
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "fastapi", "mcp", "es-semantic mcp") from exc
    config = options.service
    if not config.api_keys:
        raise ConfigError("the http transport needs API keys: --api-key-file FILE (one a line)")
    app = server.streamable_http_app(streamable_http_path=MCP_PATH, stateless_http=True,
                                     json_response=True, host=options.host,
                                     max_request_body_size=config.max_body_bytes)  # fmt: skip
    app.add_middleware(Guard, api_keys=config.api_keys, max_body_bytes=config.max_body_bytes,
                       max_body_seconds=config.max_body_seconds,
                       metrics=ServiceMetrics(), secrets=secrets)  # fmt: skip
    return app


async def _serve_http(server: Any, options: McpOptions, secrets: list[str]) -> None:
    try:
        import uvicorn
    except ImportError as exc:
        raise MissingDependencyError(exc.name or "uvicorn", "mcp", "es-semantic mcp") from exc
    app = http_app(server, options, secrets)
    config = uvicorn.Config(app, host=options.host, port=options.port, log_level="warning",
                            limit_concurrency=options.service.max_connections,
                            timeout_graceful_shutdown=30)  # fmt: skip
    await uvicorn.Server(config).serve()
