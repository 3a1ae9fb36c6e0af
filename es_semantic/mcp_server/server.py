"""The MCP server (the official ``mcp`` SDK's ``MCPServer``): four read-only tools over
:class:`~es_semantic.mcp_server.tools.SearchTools`, served over stdio or streamable HTTP
(behind the ``serve`` guard: API keys, body limit, errors logged redacted).

No ``from __future__ import annotations`` here: the SDK reads the tools' annotations at run
time to build their JSON schemas, and the caps in them are values of this server.
"""

import logging
import traceback
from collections.abc import Awaitable, Callable, Sequence
from typing import Annotated, Any, Literal, TypeVar

from elasticsearch import ApiError, TransportError
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from es_semantic._version import __version__
from es_semantic.errors import EsSemanticError, MissingDependencyError
from es_semantic.mcp_server.limits import argument_error, argument_hints
from es_semantic.mcp_server.tools import SearchTools
from es_semantic.redact import redact

try:
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
    from mcp.types import ToolAnnotations
except ImportError as exc:  # pragma: no cover - the mcp extra
    raise MissingDependencyError(exc.name or "mcp", "mcp", "es-semantic mcp") from exc

log = logging.getLogger("es_semantic.mcp")
READ_ONLY = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True,
                            open_world_hint=False)  # fmt: skip
Scalar = str | int | float | bool
T = TypeVar("T")
INSTRUCTIONS = (
    "Search the organisation's Elasticsearch indices by meaning and by keywords. Call "
    "list_indices first: it names the indices, their metadata fields and the values those "
    "take (use them in search filters). Then search with plain text; get_document reads a "
    "hit in full; explain says why a hit ranked where it did."
)


class Range(BaseModel):
    """Bounds for a number or date field (at least one)."""

    model_config = ConfigDict(extra="forbid")
    gte: Scalar | None = None
    gt: Scalar | None = None
    lte: Scalar | None = None
    lt: Scalar | None = None


Filters = dict[str, Scalar | list[Scalar] | Range]


class _Server(MCPServer[Any]):
    """``MCPServer`` whose refused arguments are one sentence (the SDK sends pydantic's
    errors: several lines, one per union member, for one wrong filter)."""

    hints: dict[str, str]

    async def call_tool(self, name: str, arguments: dict[str, Any], context: Any = None) -> Any:
        try:
            return await super().call_tool(name, arguments, context)
        except ToolError as exc:
            cause = exc.__cause__
            if isinstance(cause, ValidationError) and not isinstance(exc, UnexpectedToolError):
                errors = cause.errors(include_url=False, include_input=False)
                raise ToolError(argument_error(name, errors, self.hints)) from cause
            raise


def build_server(tools: SearchTools, secrets: Sequence[str] = ()) -> MCPServer:
    """The MCP server with the tools ``search``, ``get_document``, ``list_indices`` and
    ``explain``; errors reach the agent as one redacted sentence."""
    limits, names = tools.limits, tools.indices
    masked = list(secrets)
    server = _Server(
        "es-semantic", instructions=INSTRUCTIONS, version=__version__, log_level="WARNING"
    )
    server.hints = argument_hints(limits, names)
    query_t = Annotated[str, Field(
        description="What to look for, in plain words (not query syntax).", min_length=1,
        json_schema_extra={"maxLength": limits.max_query_chars})]  # fmt: skip
    index_t = Annotated[str, Field(
        description="One of the indices list_indices returns.",
        json_schema_extra={"enum": list(names)})]  # fmt: skip
    mode_t = Annotated[Literal["keyword", "knn", "hybrid"], Field(
        description="hybrid (default): words and meaning fused; keyword: exact words (BM25); "
        "knn: meaning only (vectors).")]  # fmt: skip
    filters_t = Annotated[Filters | None, Field(
        description="Metadata filters, all must hold: {field: value}, {field: [v1, v2]} (any "
        "of), or {field: {gte, gt, lte, lt}} for numbers and dates. Fields and their values "
        "are listed by list_indices.",
        json_schema_extra={"maxProperties": limits.max_filters})]  # fmt: skip
    rerank_t = Annotated[bool, Field(
        description="Rerank the candidates with the server's cross-encoder (slower, often "
        "better); refused when the server has none.")]  # fmt: skip
    k_t = Annotated[
        int,
        Field(  # the bounds are checked by the tool: a one-sentence error
            description="How many hits.", json_schema_extra={"minimum": 1, "maximum": limits.max_k}
        ),
    ]
    id_t = Annotated[str, Field(description="A hit's id, as search returned it.", min_length=1,
                                json_schema_extra={"maxLength": limits.max_id_chars})]  # fmt: skip

    async def guarded(call: Callable[[], Awaitable[T]]) -> T:
        try:
            return await call()
        except EsSemanticError as exc:
            raise ToolError(redact(str(exc), masked)) from None
        except (ApiError, TransportError) as exc:
            message = exc.message if isinstance(exc, ApiError) else type(exc).__name__
            raise ToolError(redact(f"the cluster refused the request: {message}", masked)) from None
        except Exception as exc:  # never the raw text: it may quote a credential
            trace = "".join(traceback.format_exception(exc))
            log.error("tool call failed: %s", redact(trace, masked))
            raise ToolError(f"internal error ({type(exc).__name__}); see the server log") from None

    @server.tool(annotations=READ_ONLY, description=(
        "Search an index with plain text. Returns the best hits first, each with id, score, "
        "title, a snippet, the passage that matched, its metadata and its rank in each "
        "retrieval leg (keyword, knn)."))  # fmt: skip
    async def search(
        query: query_t,
        index: index_t,
        mode: mode_t = "hybrid",
        k: k_t = 5,
        filters: filters_t = None,
        rerank: rerank_t = False,
    ) -> dict[str, Any]:
        plain = _plain_filters(filters)
        return await guarded(lambda: tools.search(query, index, mode, k, plain, rerank))

    @server.tool(annotations=READ_ONLY, description=(
        "Read one document by id (from a search hit): its text fields, clipped to "
        f"{limits.max_text_chars} characters each, and its metadata."))  # fmt: skip
    async def get_document(index: index_t, id: id_t) -> dict[str, Any]:
        return await guarded(lambda: tools.get_document(index, id))

    @server.tool(annotations=READ_ONLY, description=(
        "The indices you may search, each with its model, vector size, layout, text fields "
        "and metadata fields (type, and the values or range each takes: use them in "
        "filters)."))  # fmt: skip
    async def list_indices() -> dict[str, Any]:
        return {"indices": await guarded(tools.list_indices)}

    @server.tool(annotations=READ_ONLY, description=(
        "Explain why document id ranks where it does for a query: its rank and score in "
        "each retrieval leg, how they were fused, and the rerank score when reranked. Use "
        "the same query, mode and filters as the search."))  # fmt: skip
    async def explain(
        query: query_t,
        index: index_t,
        id: id_t,
        mode: mode_t = "hybrid",
        filters: filters_t = None,
        rerank: rerank_t = False,
    ) -> dict[str, Any]:
        plain = _plain_filters(filters)
        return await guarded(lambda: tools.explain(query, index, id, mode, plain, rerank))

    return server


def _plain_filters(filters: dict[str, Any] | None) -> dict[str, Any] | None:
    if not filters:
        return None
    return {k: v.model_dump(exclude_none=True) if isinstance(v, Range) else v
            for k, v in filters.items()}  # fmt: skip
