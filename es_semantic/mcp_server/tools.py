"""What the MCP tools do, over :class:`~es_semantic.search.searcher.AsyncSearcher` (the same
search path as ``serve``: the index contract checked at every query). Read-only: nothing here
writes to the cluster. No MCP import: the server (``server.py``) maps these to tools."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

from es_semantic.errors import EsSemanticError, InputError
from es_semantic.mcp_server.limits import (
    McpLimits,
    check_filters,
    check_id,
    check_index,
    check_k,
    check_query,
    document_json,
    explanation,
    index_json,
    result_json,
    value_aggregations,
)
from es_semantic.search.searcher import AsyncSearcher

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

    from es_semantic.encoding.reranker import CrossEncoder
    from es_semantic.search.encoders import QueryEncoder
    from es_semantic.types import SearchResult

ToolMode = Literal["keyword", "knn", "hybrid"]
LEGS = {"keyword": ("keyword",), "knn": ("knn",), "hybrid": ("keyword", "knn")}


class Busy(InputError):
    """Too many tool calls in flight."""


class SearchTools:
    """The tools' logic for the allowed indices (one searcher each, made up front: unknown
    names grow nothing)."""

    def __init__(
        self,
        es: AsyncElasticsearch,
        encoder: QueryEncoder,
        indices: Sequence[str],
        *,
        reranker: CrossEncoder | None = None,
        limits: McpLimits | None = None,
    ) -> None:
        if not indices:
            raise InputError("name the indices agents may search (--index INDEX, repeatable)")
        self.es, self.reranker, self.limits = es, reranker, limits or McpLimits()
        self.indices = list(dict.fromkeys(indices))
        self.searchers = {
            name: AsyncSearcher(es, name, encoder, reranker=reranker) for name in self.indices
        }
        self.in_flight = 0

    @contextmanager
    def slot(self) -> Iterator[None]:
        """One tool call in flight; beyond ``max_concurrent`` a refusal at once."""
        if self.in_flight >= self.limits.max_concurrent:
            raise Busy(f"busy: {self.in_flight} tool calls in flight; retry in a moment")
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    async def _search(
        self, query: str, index: str, mode: ToolMode, k: int,
        filters: Mapping[str, Any] | None, rerank: bool,
    ) -> tuple[AsyncSearcher, SearchResult]:  # fmt: skip
        searcher = self.searchers[check_index(index, self.indices)]
        if rerank and self.reranker is None:
            raise InputError("rerank is not available: this server has no reranker (--rerank)")
        result = await searcher.search(
            check_query(query, self.limits), mode=mode, k=k, fusion="auto",
            filters=check_filters(filters, self.limits), rerank=rerank,
            rerank_top=max(k, self.limits.rerank_top) if rerank else 20,
        )  # fmt: skip
        return searcher, result

    async def search(
        self, query: str, index: str, mode: ToolMode = "hybrid", k: int = 5,
        filters: Mapping[str, Any] | None = None, rerank: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """The best ``k`` hits of ``query`` in ``index``."""
        with self.slot():
            check_k(k, self.limits)
            searcher, result = await self._search(query, index, mode, k, filters, rerank)
            return result_json(index, result, await searcher.contract(), self.limits)

    async def explain(
        self, query: str, index: str, id: str, mode: ToolMode = "hybrid",
        filters: Mapping[str, Any] | None = None, rerank: bool = False,
    ) -> dict[str, Any]:  # fmt: skip
        """Why document ``id`` ranks where it does for ``query``."""
        with self.slot():
            check_id(id, self.limits)
            window = self.limits.explain_window
            _, result = await self._search(query, index, mode, window, filters, rerank)
            return explanation(id, result, window, LEGS[mode])

    async def get_document(self, index: str, id: str) -> dict[str, Any]:
        """One document's text fields and metadata (never its vectors)."""
        with self.slot():
            searcher = self.searchers[check_index(index, self.indices)]
            contract = await searcher.contract()  # checked against the encoder, like a search
            fields = [*contract.text_fields, *contract.metadata_fields]
            body: Any = await self.es.search(
                index=index, query={"ids": {"values": [check_id(id, self.limits)]}}, size=1,
                source_includes=fields,
            )  # fmt: skip
            hits = body["hits"]["hits"]
            if not hits:
                raise InputError(f"no document with id {id!r} in {index!r} (ids come from search)")
            return document_json(index, hits[0], contract, self.limits)

    async def list_indices(self) -> list[dict[str, Any]]:
        """The allowed indices with their contract and metadata fields' values."""
        with self.slot():
            out: list[dict[str, Any]] = []
            for name, searcher in self.searchers.items():
                try:
                    contract = await searcher.contract()
                except EsSemanticError as exc:  # one index down: the others still listed
                    out.append({"index": name, "error": str(exc)})
                    continue
                body: Any = await self.es.search(
                    index=name, size=0, track_total_hits=True,
                    aggs=value_aggregations(contract, self.limits) or None,
                )  # fmt: skip
                out.append(index_json(name, contract, body, self.limits))
            return out
