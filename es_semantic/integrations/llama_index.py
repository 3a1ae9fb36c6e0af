"""A LlamaIndex retriever over es-semantic (the ``llama-index`` extra: ``llama-index-core``).

>>> retriever = ESSemanticRetriever(Searcher(es, "docs", Encoder()), k=5)  # doctest: +SKIP
>>> RetrieverQueryEngine.from_args(retriever, llm=...).query("rotate api keys")  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from typing import Any

from es_semantic.errors import ConfigError, MissingDependencyError
from es_semantic.integrations.filters import Leaf, Node, Op, to_filters, unsupported
from es_semantic.integrations.hits import hit_content, hit_metadata
from es_semantic.schema.contract import IndexContract
from es_semantic.search.request import Fusion, Mode
from es_semantic.search.searcher import AsyncSearcher, Searcher
from es_semantic.types import SearchResult

try:
    from llama_index.core.base.base_retriever import BaseRetriever
    from llama_index.core.callbacks import CallbackManager
    from llama_index.core.schema import NodeWithScore, QueryBundle, TextNode
    from llama_index.core.vector_stores.types import (
        FilterCondition,
        FilterOperator,
        MetadataFilter,
        MetadataFilters,
    )
except ImportError as exc:  # pragma: no cover - the llama-index extra
    raise MissingDependencyError(
        exc.name or "llama-index-core", "llama-index", "es_semantic.integrations.llama_index"
    ) from exc

__all__ = ["ESSemanticRetriever", "translate_filters"]
FRAMEWORK = "LlamaIndex"
OPERATORS: dict[FilterOperator, Op] = {
    FilterOperator.EQ: "eq", FilterOperator.CONTAINS: "eq", FilterOperator.IN: "in",
    FilterOperator.ANY: "in", FilterOperator.GT: "gt", FilterOperator.GTE: "gte",
    FilterOperator.LT: "lt", FilterOperator.LTE: "lte", FilterOperator.IS_EMPTY: "exists",
}  # fmt: skip


def translate_filters(filters: MetadataFilters | MetadataFilter) -> Leaf | Node:
    """LlamaIndex ``MetadataFilters`` (AND/OR, nested) as a tree :func:`to_filters` folds."""
    if isinstance(filters, MetadataFilter):
        op = OPERATORS.get(filters.operator)
        if op is None:
            raise unsupported(FRAMEWORK, str(filters.operator.value))
        if op == "exists":  # is_empty: the field is missing
            return Leaf(filters.key, "exists", False)
        return Leaf(filters.key, op, filters.value)
    condition = filters.condition or FilterCondition.AND
    if condition == FilterCondition.NOT:
        raise unsupported(FRAMEWORK, "not")
    children = [translate_filters(f) for f in filters.filters]
    return Node("or" if condition == FilterCondition.OR else "and", children)


def es_filters(filters: Any) -> dict[str, Any] | None:
    """es-semantic filters from a plain dict (taken as they are) or LlamaIndex filters."""
    if filters is None or isinstance(filters, Mapping):
        return dict(filters) if filters else None
    if isinstance(filters, MetadataFilters | MetadataFilter):
        return to_filters(translate_filters(filters), FRAMEWORK)
    raise ConfigError(
        f"filters must be a dict or llama_index MetadataFilters, not {type(filters).__name__}"
    )


class ESSemanticRetriever(BaseRetriever):
    """Nodes from an es-semantic index: the matched passage as text, the hit's score; the
    source fields, ``id``, per-leg ``scores`` and ``ranks`` as metadata.

    ``searcher`` serves ``retrieve``, ``async_searcher`` serves ``aretrieve`` (without one,
    ``aretrieve`` runs the sync searcher in a thread). ``filters``: es-semantic filters or
    ``MetadataFilters``; other keyword arguments go to ``Searcher.search``.
    """

    def __init__(
        self,
        searcher: Searcher | None = None,
        *,
        async_searcher: AsyncSearcher | None = None,
        mode: Mode = "hybrid",
        k: int = 4,
        fusion: Fusion = "auto",
        filters: MetadataFilters | Mapping[str, Any] | None = None,
        rerank: bool = False,
        callback_manager: CallbackManager | None = None,
        **search_options: Any,
    ) -> None:
        if searcher is None and async_searcher is None:
            raise ConfigError("ESSemanticRetriever needs a Searcher (or async_searcher=)")
        super().__init__(callback_manager=callback_manager)
        self.searcher, self.async_searcher = searcher, async_searcher
        self.options: dict[str, Any] = {"mode": mode, "k": k, "fusion": fusion,
                                        "rerank": rerank, **search_options}  # fmt: skip
        self.options["filters"] = es_filters(filters)  # checked now, not at the first query

    def _retrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.searcher is None:
            raise ConfigError("retrieve needs ESSemanticRetriever(searcher=Searcher(...))")
        result = self.searcher.search(query_bundle.query_str, **self.options)
        return _nodes(result, self.searcher.index, self.searcher.contract())

    async def _aretrieve(self, query_bundle: QueryBundle) -> list[NodeWithScore]:
        if self.async_searcher is None:  # the sync search in a thread: the loop keeps going
            return await asyncio.to_thread(self._retrieve, query_bundle)
        result = await self.async_searcher.search(query_bundle.query_str, **self.options)
        contract = await self.async_searcher.contract()
        return _nodes(result, self.async_searcher.index, contract)


def _nodes(result: SearchResult, index: str, contract: IndexContract) -> list[NodeWithScore]:
    return [
        NodeWithScore(
            node=TextNode(id_=h.id, text=hit_content(h, contract), metadata=hit_metadata(h, index)),
            score=h.score,
        )
        for h in result.hits
    ]
