"""A LangChain retriever over es-semantic (the ``langchain`` extra: ``langchain-core``).

>>> retriever = ESSemanticRetriever(searcher=Searcher(es, "docs", Encoder()), k=5)  # doctest: +SKIP
>>> retriever.invoke("how do I rotate api keys", filters={"lang": "en"})  # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from es_semantic.errors import ConfigError, MissingDependencyError
from es_semantic.integrations.filters import Leaf, Node, to_filters, unsupported
from es_semantic.integrations.hits import hit_content, hit_metadata
from es_semantic.search.request import Fusion, Mode
from es_semantic.search.searcher import AsyncSearcher, Searcher
from es_semantic.types import SearchResult

try:
    from langchain_core.callbacks import (
        AsyncCallbackManagerForRetrieverRun,
        CallbackManagerForRetrieverRun,
    )
    from langchain_core.documents import Document
    from langchain_core.retrievers import BaseRetriever
    from langchain_core.runnables.config import run_in_executor
    from langchain_core.structured_query import Comparator, Comparison, Operation, Operator
except ImportError as exc:  # pragma: no cover - the langchain extra
    raise MissingDependencyError(
        exc.name or "langchain-core", "langchain", "es_semantic.integrations.langchain"
    ) from exc

__all__ = ["ESSemanticRetriever", "translate_filter"]
FRAMEWORK = "LangChain"
COMPARATORS = {Comparator.EQ: "eq", Comparator.CONTAIN: "eq", Comparator.IN: "in",
               Comparator.GT: "gt", Comparator.GTE: "gte", Comparator.LT: "lt",
               Comparator.LTE: "lte"}  # fmt: skip


def translate_filter(directive: Comparison | Operation) -> Leaf | Node:
    """A LangChain structured-query filter as a tree :func:`to_filters` folds."""
    if isinstance(directive, Comparison):
        op = COMPARATORS.get(directive.comparator)
        if op is None:
            raise unsupported(FRAMEWORK, str(directive.comparator.value))
        return Leaf(directive.attribute, op, directive.value)  # type: ignore[arg-type]
    if directive.operator == Operator.NOT:
        raise unsupported(FRAMEWORK, "not")
    children = [translate_filter(a) for a in directive.arguments]  # type: ignore[arg-type]
    return Node("and" if directive.operator == Operator.AND else "or", children)


def es_filters(filters: Any) -> dict[str, Any] | None:
    """es-semantic filters from a plain dict (taken as they are) or a LangChain filter."""
    if filters is None or isinstance(filters, Mapping):
        return dict(filters) if filters else None
    if isinstance(filters, Comparison | Operation):
        return to_filters(translate_filter(filters), FRAMEWORK)
    raise ConfigError(
        f"filters must be a dict or a langchain_core Comparison/Operation, not "
        f"{type(filters).__name__}"
    )


class ESSemanticRetriever(BaseRetriever):
    """Documents from an es-semantic index: the matched passage as ``page_content``; the
    source fields, ``id``, ``score``, per-leg ``scores`` and ``ranks`` as ``metadata``.

    ``searcher`` serves ``invoke``, ``async_searcher`` serves ``ainvoke`` (without one,
    ``ainvoke`` runs the sync searcher in a thread). ``filters``: es-semantic filters or a
    LangChain ``Comparison``/``Operation``; a call may pass ``filters=`` to override them.
    """

    searcher: Searcher | None = None
    async_searcher: AsyncSearcher | None = None
    mode: Mode = "hybrid"
    k: int = 4
    fusion: Fusion = "auto"
    filters: Any = None
    rerank: bool = False
    search_options: dict[str, Any] = {}  # noqa: RUF012 - pydantic copies field defaults

    def _options(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {"mode": self.mode, "k": self.k, "fusion": self.fusion,
                                   "rerank": self.rerank, **self.search_options}  # fmt: skip
        options.update({k: v for k, v in kwargs.items() if k != "filters"})
        options["filters"] = es_filters(kwargs.get("filters", self.filters))
        return options

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.searcher is None:
            raise ConfigError("ESSemanticRetriever(searcher=Searcher(...)) is needed for invoke")
        result = self.searcher.search(query, **self._options(kwargs))
        return _documents(result, self.searcher, self.searcher.contract())

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun, **kwargs: Any
    ) -> list[Document]:
        if self.async_searcher is None:
            sync = run_manager.get_sync()
            return await run_in_executor(None, lambda: self._get_relevant_documents(
                query, run_manager=sync, **kwargs))  # fmt: skip
        result = await self.async_searcher.search(query, **self._options(kwargs))
        contract = await self.async_searcher.contract()
        return _documents(result, self.async_searcher, contract)


def _documents(result: SearchResult, searcher: Any, contract: Any) -> list[Document]:
    return [
        Document(
            page_content=hit_content(h, contract), metadata=hit_metadata(h, searcher.index), id=h.id
        )
        for h in result.hits
    ]
