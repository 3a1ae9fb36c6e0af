"""Searcher (sync) and AsyncSearcher: encode -> one _msearch -> fuse -> optional rerank.

Both are thin shells over :mod:`es_semantic.search.core`; a unit test keeps their public
signatures identical. The contract of the index is read once and checked against the encoder;
when an alias moves to an index built with another model (``es-semantic migrate``), a searcher
given both encoders notices (hits from another index, or an error), re-reads the contract and
repeats the search with the encoder that fits, so queries keep working across the swap.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError

from es_semantic.encoding.encoder import Encoder
from es_semantic.encoding.reranker import CrossEncoder
from es_semantic.errors import ConfigError, SearchError
from es_semantic.indexing.admin import contract_from_mapping_response, missing_index_error
from es_semantic.indexing.contract import IndexContract
from es_semantic.search import core
from es_semantic.search.core import Fusion, Mode, SearchPlan, SearchRequest
from es_semantic.types import SearchResult

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

RRF_MIN_VERSION = (8, 14)
RRF_LICENSES = {"platinum", "enterprise", "trial"}
RERANK_CHUNK = 8


def server_rrf_from_probe(info: Mapping[str, Any], license_type: str | None) -> bool:
    """Whether to try the rrf retriever: version >= 8.14 and a licence that grants it
    (an unreadable licence, e.g. a server without the _license API, is tried once)."""
    number = str(info.get("version", {}).get("number", "0.0"))
    try:
        version = tuple(int(part) for part in number.split(".")[:2])
    except ValueError:
        return False
    if version < RRF_MIN_VERSION:
        return False
    return license_type is None or license_type in RRF_LICENSES


def _license_type(resp: Any) -> str | None:
    lic = resp.get("license") if isinstance(resp, Mapping) else None
    return str(lic.get("type")) if isinstance(lic, Mapping) else None


def _msearch_lines(index: str, bodies: Mapping[str, Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    lines: list[Mapping[str, Any]] = []
    for body in bodies.values():
        lines += [{"index": index}, body]
    return lines


def _split_responses(plan: SearchPlan, resp: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return dict(zip(plan.bodies, resp["responses"], strict=True))


def _raise_for_errors(index: str, responses: Mapping[str, Mapping[str, Any]]) -> None:
    for leg, response in responses.items():
        error = core.response_error(response)
        if error is not None:
            if "index_not_found" in error:
                raise missing_index_error(index)
            raise SearchError(f"{leg} search on {index!r} failed: {error}")


class _SearcherBase:
    """State and pure steps shared by the sync and async searchers."""

    def __init__(
        self,
        index: str,
        encoder: Encoder | Sequence[Encoder],
        *,
        reranker: CrossEncoder | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        self.index = index
        self.encoders = [encoder] if isinstance(encoder, Encoder) else list(encoder)
        if not self.encoders:
            raise ConfigError("a Searcher needs at least one Encoder")
        self.encoder = self.encoders[0]  # the one matching the index's contract, once read
        self.reranker = reranker
        self.fields = list(fields) if fields else None
        self._contract: IndexContract | None = None
        self._indices: frozenset[str] = frozenset()
        self._server_rrf: bool | None = None
        self._lock = threading.Lock()

    def _request(self, query: str, **options: Any) -> SearchRequest:
        if options.get("rerank") and self.reranker is None:
            raise ConfigError("rerank=True needs a CrossEncoder: Searcher(..., reranker=...)")
        options.setdefault("fields", self.fields)
        return SearchRequest(query, **options)

    def _accept_mapping(self, mapping: Mapping[str, Any]) -> IndexContract:
        """Read the contract from a get-mapping response and pick the encoder that fits it."""
        contract = contract_from_mapping_response(dict(mapping), self.index)
        fitting = [
            e for e in self.encoders if not contract.differences(e.config, for_indexing=False)
        ]
        if not fitting:
            contract.check(self.encoders[0].config, self.index)  # raises, naming the differences
        with self._lock:
            self._contract, self._indices, self.encoder = contract, frozenset(mapping), fitting[0]
        return contract

    def _stale(self, responses: Mapping[str, Mapping[str, Any]]) -> bool:
        """Whether the alias may have moved since the contract was read (hits from another
        index, or an error): then the contract is forgotten and the search made once more."""
        errors = any(core.response_error(r) is not None for r in responses.values())
        if not errors and core.hit_indices(responses) <= self._indices:
            return False
        with self._lock:
            self._contract = None
        return True

    def _rerank_scores(
        self, request: SearchRequest, result: SearchResult, contract: IndexContract
    ) -> tuple[list[float] | None, float]:
        """Cross-encoder scores for the rerank pool, in chunks; None when over budget."""
        assert self.reranker is not None
        started = time.perf_counter()
        pool = result.hits[: request.rerank_top]
        passages = [core.rerank_text(h, contract.text_fields) for h in pool]
        scores: list[float] = []
        for i in range(0, len(passages), RERANK_CHUNK):
            chunk = passages[i : i + RERANK_CHUNK]
            scores += self.reranker.score(request.query, chunk).tolist()
            elapsed = (time.perf_counter() - started) * 1000
            budget = request.rerank_budget_ms
            if budget is not None and elapsed > budget and i + RERANK_CHUNK < len(passages):
                return None, elapsed
        return scores, (time.perf_counter() - started) * 1000

    def _finish(
        self,
        request: SearchRequest,
        contract: IndexContract,
        plan: SearchPlan,
        responses: Mapping[str, Mapping[str, Any]],
        took: dict[str, float],
    ) -> SearchResult:
        _raise_for_errors(self.index, responses)
        return core.assemble(request, contract, plan, responses, took)

    @staticmethod
    def _wants_server_rrf(request: SearchRequest) -> bool:
        return request.mode == "hybrid" and request.fusion in ("auto", "server")

    def _fallback(
        self,
        request: SearchRequest,
        contract: IndexContract,
        vector: list[float] | None,
        plan: SearchPlan,
        responses: Mapping[str, Mapping[str, Any]],
    ) -> SearchPlan | None:
        """The client-fusion plan when the cluster refused the rrf retriever (then cached)."""
        if plan.fusion != "server-rrf" or not core.is_rrf_refusal(responses["rrf"]):
            return None
        self._server_rrf = False  # later searches go straight to client fusion
        if request.fusion == "server":
            _raise_for_errors(self.index, responses)
        return core.plan_search(request, contract, vector, server_rrf=False)

    @staticmethod
    def _paged(
        result: SearchResult, request: SearchRequest, plan: SearchPlan, started: float
    ) -> SearchResult:
        result = core.page(result, request, plan)
        result.took_ms["total"] = (time.perf_counter() - started) * 1000
        return result


class Searcher(_SearcherBase):
    """Keyword, kNN and hybrid search over an es-semantic index; safe to share across threads.

    >>> Searcher(es, "docs", Encoder()).search("what is bm25", mode="hybrid", k=5)  # doctest: +SKIP
    """

    def __init__(
        self,
        es: Elasticsearch,
        index: str,
        encoder: Encoder | Sequence[Encoder],
        *,
        reranker: CrossEncoder | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        super().__init__(index, encoder, reranker=reranker, fields=fields)
        self.es = es

    def contract(self) -> IndexContract:
        """The index contract, read once (again when the alias moves), checked against the
        encoder(s)."""
        if self._contract is not None:
            return self._contract
        try:
            mapping = self.es.indices.get_mapping(index=self.index).body
        except NotFoundError:
            raise missing_index_error(self.index) from None
        return self._accept_mapping(mapping)

    def server_rrf(self) -> bool:
        """Probe once (version, licence) whether the cluster may run the rrf retriever."""
        if self._server_rrf is None:
            info = self.es.info().body
            try:
                license_type = _license_type(self.es.license.get().body)
            except ApiError:
                license_type = None
            self._server_rrf = server_rrf_from_probe(info, license_type)
        return self._server_rrf

    def search(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        k: int = 10,
        offset: int = 0,
        fusion: Fusion = "auto",
        alpha: float = 0.5,
        rank_constant: int = 60,
        window: int = core.DEFAULT_WINDOW,
        num_candidates: int | None = None,
        filters: Mapping[str, Any] | None = None,
        source: Sequence[str] | None = None,
        highlight: bool = False,
        exact: bool = False,
        rerank: bool = False,
        rerank_top: int = 20,
        rerank_budget_ms: float | None = None,
        query_vector: Sequence[float] | None = None,
    ) -> SearchResult:
        """Search ``query``; see :class:`es_semantic.search.core.SearchRequest` for options.

        ``query_vector``: a vector already made with this index's encoder (skips encoding).
        """
        started = time.perf_counter()
        request = self._request(
            query, mode=mode, k=k, offset=offset, fusion=fusion, alpha=alpha,
            rank_constant=rank_constant, window=window, num_candidates=num_candidates,
            filters=filters, source=source, highlight=highlight, exact=exact, rerank=rerank,
            rerank_top=rerank_top, rerank_budget_ms=rerank_budget_ms,
        )  # fmt: skip
        took: dict[str, float] = {}
        for attempt in range(2):
            contract = self.contract()
            vector = core.given_vector(query_vector, contract)
            if vector is None and core.needs_vector(request):
                t0 = time.perf_counter()
                vector = self.encoder.encode_queries([request.query])[0].tolist()
                took["encode"] = (time.perf_counter() - t0) * 1000
            server_rrf = self._wants_server_rrf(request) and self.server_rrf()
            plan = core.plan_search(request, contract, vector, server_rrf=server_rrf)
            responses = self._msearch(plan, took)
            if (fallback := self._fallback(request, contract, vector, plan, responses)) is not None:
                plan, responses = fallback, self._msearch(fallback, took)
            if attempt == 0 and query_vector is None and self._stale(responses):
                continue
            break
        result = self._finish(request, contract, plan, responses, took)
        if request.rerank:
            result = core.apply_rerank(
                result, request, *self._rerank_scores(request, result, contract)
            )
        return self._paged(result, request, plan, started)

    def _msearch(self, plan: SearchPlan, took: dict[str, float]) -> dict[str, Mapping[str, Any]]:
        t0 = time.perf_counter()
        try:
            resp = self.es.msearch(searches=_msearch_lines(self.index, plan.bodies)).body
        except ApiError as exc:
            raise SearchError(f"search on {self.index!r} failed: {exc.message}") from None
        took["request"] = took.get("request", 0.0) + (time.perf_counter() - t0) * 1000
        return _split_responses(plan, resp)


class AsyncSearcher(_SearcherBase):
    """The async twin of :class:`Searcher` (``AsyncElasticsearch``; model work in a thread).

    Create one per application (e.g. in a FastAPI lifespan) and share it across requests.
    """

    def __init__(
        self,
        es: AsyncElasticsearch,
        index: str,
        encoder: Encoder | Sequence[Encoder],
        *,
        reranker: CrossEncoder | None = None,
        fields: Sequence[str] | None = None,
    ) -> None:
        super().__init__(index, encoder, reranker=reranker, fields=fields)
        self.es = es

    async def contract(self) -> IndexContract:
        """The index contract, read once (again when the alias moves), checked against the
        encoder(s)."""
        if self._contract is not None:
            return self._contract
        try:
            mapping = (await self.es.indices.get_mapping(index=self.index)).body
        except NotFoundError:
            raise missing_index_error(self.index) from None
        return self._accept_mapping(mapping)

    async def server_rrf(self) -> bool:
        """Probe once (version, licence) whether the cluster may run the rrf retriever."""
        if self._server_rrf is None:
            info = (await self.es.info()).body
            try:
                license_type = _license_type((await self.es.license.get()).body)
            except ApiError:
                license_type = None
            self._server_rrf = server_rrf_from_probe(info, license_type)
        return self._server_rrf

    async def search(
        self,
        query: str,
        *,
        mode: Mode = "hybrid",
        k: int = 10,
        offset: int = 0,
        fusion: Fusion = "auto",
        alpha: float = 0.5,
        rank_constant: int = 60,
        window: int = core.DEFAULT_WINDOW,
        num_candidates: int | None = None,
        filters: Mapping[str, Any] | None = None,
        source: Sequence[str] | None = None,
        highlight: bool = False,
        exact: bool = False,
        rerank: bool = False,
        rerank_top: int = 20,
        rerank_budget_ms: float | None = None,
        query_vector: Sequence[float] | None = None,
    ) -> SearchResult:
        """Search ``query``; see :class:`es_semantic.search.core.SearchRequest` for options.

        ``query_vector``: a vector already made with this index's encoder (skips encoding).
        """
        started = time.perf_counter()
        request = self._request(
            query, mode=mode, k=k, offset=offset, fusion=fusion, alpha=alpha,
            rank_constant=rank_constant, window=window, num_candidates=num_candidates,
            filters=filters, source=source, highlight=highlight, exact=exact, rerank=rerank,
            rerank_top=rerank_top, rerank_budget_ms=rerank_budget_ms,
        )  # fmt: skip
        took: dict[str, float] = {}
        for attempt in range(2):
            contract = await self.contract()
            vector = core.given_vector(query_vector, contract)
            if vector is None and core.needs_vector(request):
                t0 = time.perf_counter()
                vectors = await asyncio.to_thread(self.encoder.encode_queries, [request.query])
                vector = vectors[0].tolist()
                took["encode"] = (time.perf_counter() - t0) * 1000
            server_rrf = self._wants_server_rrf(request) and await self.server_rrf()
            plan = core.plan_search(request, contract, vector, server_rrf=server_rrf)
            responses = await self._msearch(plan, took)
            if (fallback := self._fallback(request, contract, vector, plan, responses)) is not None:
                plan, responses = fallback, await self._msearch(fallback, took)
            if attempt == 0 and query_vector is None and self._stale(responses):
                continue
            break
        result = self._finish(request, contract, plan, responses, took)
        if request.rerank:
            scored = await asyncio.to_thread(self._rerank_scores, request, result, contract)
            result = core.apply_rerank(result, request, *scored)
        return self._paged(result, request, plan, started)

    async def _msearch(
        self, plan: SearchPlan, took: dict[str, float]
    ) -> dict[str, Mapping[str, Any]]:
        t0 = time.perf_counter()
        try:
            resp = (await self.es.msearch(searches=_msearch_lines(self.index, plan.bodies))).body
        except ApiError as exc:
            raise SearchError(f"search on {self.index!r} failed: {exc.message}") from None
        took["request"] = took.get("request", 0.0) + (time.perf_counter() - t0) * 1000
        return _split_responses(plan, resp)
