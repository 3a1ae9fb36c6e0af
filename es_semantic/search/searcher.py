"""Searcher (sync) and AsyncSearcher: encode -> one _msearch -> fuse -> optional rerank.

Both are thin shells over :mod:`es_semantic.search.core`; a unit test keeps their public
signatures identical. The index contract is checked against the encoder and read again after
``contract_ttl_s`` (an index rebuilt under its name with another model is refused); when an
alias moves to an index of another model (``migrate``), a searcher given both encoders notices
(hits from another index, an error), re-reads the contract and repeats the search with the
encoder that fits, so queries keep working across the swap.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from elasticsearch import ApiError, AsyncElasticsearch, Elasticsearch

from es_semantic.cluster import ClusterInfo
from es_semantic.elastic.calls import Call, Steps, Work, run, run_async
from es_semantic.elastic.client import probe_steps
from es_semantic.errors import ConfigError, IndexContractError, SearchError
from es_semantic.redact import client_secrets, redact
from es_semantic.schema.contract import (
    IndexContract,
    contract_from_mapping_response,
    missing_index_error,
)
from es_semantic.schema.tuning import Tuning, tuning_from_mapping_response
from es_semantic.search import core, images, tuned
from es_semantic.search.core import SearchPlan
from es_semantic.search.encoders import AsyncQueryEncoder, QueryEncoder
from es_semantic.search.legs import needs_sparse
from es_semantic.search.request import DEFAULT_WINDOW, Fusion, Mode, SearchRequest
from es_semantic.search.responses import msearch_lines, raise_for_errors, split_responses
from es_semantic.types import SearchResult

if TYPE_CHECKING:
    from es_semantic.encoding.reranker import CrossEncoder
    from es_semantic.encoding.sparse import SparseEncoder

RERANK_CHUNK = 8
CONTRACT_TTL_S = 10.0  # seconds a contract is trusted; then read (tuning too), checked again

ClientT = TypeVar("ClientT")


class _SearcherBase(Generic[ClientT]):
    """State and the search steps shared by the sync and async searchers (one signature for
    both: ``es`` is an ``Elasticsearch`` or an ``AsyncElasticsearch``)."""

    def __init__(
        self,
        es: ClientT,
        index: str,
        encoder: QueryEncoder | Sequence[QueryEncoder],
        *,
        reranker: CrossEncoder | None = None,
        fields: Sequence[str] | None = None,
        sparse_encoder: SparseEncoder | None = None,
        sparse_from_contract: bool = True,
    ) -> None:
        self.es = es
        self.index = index
        self.encoders = list(encoder) if isinstance(encoder, Sequence) else [encoder]
        if not self.encoders:
            raise ConfigError("a Searcher needs at least one Encoder")
        self.encoder = self.encoders[0]  # the one matching the index's contract, once read
        self.reranker = reranker
        self.fields = list(fields) if fields else None
        self.sparse_encoder = sparse_encoder  # the sparse leg's model (its queries)
        self.sparse_from_contract = sparse_from_contract  # else: the model its contract names
        # the contract, the indices it was read from and the encoder fitting it, held together:
        # a search uses all three as one, whatever another search reads meanwhile
        self._held: tuple[IndexContract, frozenset[str], QueryEncoder] | None = None
        self._read_at, self.contract_ttl_s = 0.0, CONTRACT_TTL_S  # when the contract was read
        self._tuning: Tuning | None = None  # what `eval --tune --save` stored for the index
        self._cluster: ClusterInfo | None = None
        self._refused: frozenset[str] = frozenset()  # server fusions the cluster refused
        self._lock = threading.Lock()
        self.secrets = client_secrets(es)  # the client's credentials, kept out of every message

    def _request(self, query: str, **options: Any) -> SearchRequest:
        if options.get("rerank") and self.reranker is None:
            raise ConfigError("rerank=True needs a CrossEncoder: Searcher(..., reranker=...)")
        options.setdefault("fields", self.fields)
        return SearchRequest(query, **options)

    def _accept_mapping(
        self, mapping: Mapping[str, Any]
    ) -> tuple[IndexContract, frozenset[str], QueryEncoder]:
        """Read the contract from a get-mapping response and pick the encoder that fits it."""
        contract = contract_from_mapping_response(dict(mapping), self.index)
        if contract.sparse is not None and self.sparse_encoder is not None:
            contract.sparse.check(self.sparse_encoder.spec, self.index)
        fitting = [
            e for e in self.encoders if not contract.differences(e.config, for_indexing=False)
        ]
        if not fitting:
            contract.check(self.encoders[0].config, self.index)  # raises, naming the differences
        held = (contract, frozenset(mapping), fitting[0])
        with self._lock:
            self._held, self.encoder, self._read_at = held, fitting[0], time.monotonic()
            self._tuning = tuning_from_mapping_response(mapping)
        return held

    def _forget_contract(self) -> None:
        with self._lock:
            self._held = None

    def _mapping_steps(self) -> Steps[Mapping[str, Any]]:
        answer = yield Call("indices.get_mapping", {"index": self.index})
        if answer.status == 404:
            raise missing_index_error(self.index)
        mapping: Mapping[str, Any] = answer.raise_for_error()
        return mapping

    def _contract_steps(self) -> Steps[IndexContract]:
        return (yield from self._held_steps())[0]

    def _held_steps(self) -> Steps[tuple[IndexContract, frozenset[str], QueryEncoder]]:
        held = self._held
        if held is not None and time.monotonic() < self._read_at + self.contract_ttl_s:
            return held
        return self._accept_mapping((yield from self._mapping_steps()))

    def _cluster_steps(self) -> Steps[ClusterInfo]:
        if self._cluster is None:
            self._cluster = yield from probe_steps()
        return self._cluster

    def _steps(
        self, request: SearchRequest, query_vector: Sequence[float] | None,
        made_for: IndexContract | None = None,
    ) -> Steps[SearchResult]:  # fmt: skip
        """The whole search as steps: contract, encode, one _msearch, licence fallback, alias
        move check, fuse, rerank. Each ``yield`` hands one piece of I/O (a client call, or the
        model's work) to ``calls.run`` or ``calls.run_async``. ``made_for``: the contract
        ``query_vector`` was made for (else: the one held when the search starts)."""
        started = time.perf_counter()
        took: dict[str, float] = {}
        first = made_for
        given, fingerprint = request, getattr(self.reranker, "fingerprint", None)
        for attempt in range(2):
            contract, indices, encoder = yield from self._held_steps()
            request = tuned.apply_tuning(given, self._tuning, fingerprint)
            first = first or contract
            if query_vector is not None and first.vector_space != contract.vector_space:
                raise IndexContractError(
                    f"{self.index!r} now points at an index built with {contract.model_name}; "
                    "the query_vector given was made for the index it pointed at before: "
                    "encode the query again, or pass query text only"
                )
            vector = core.given_vector(query_vector, contract)
            if vector is None and core.needs_vector(request):
                t0 = time.perf_counter()
                vector = (yield self._encode_work(request, encoder)).body
                took["encode"] = (time.perf_counter() - t0) * 1000
            sparse = yield from self._sparse_steps(request, contract, took)
            cluster = self._cluster or core.UNKNOWN_CLUSTER
            if self._cluster is None and _needs_cluster(request):
                cluster = yield from self._cluster_steps()
            plan = core.plan_search(request, contract, vector, cluster=cluster,
                                    refused=self._refused, sparse=sparse)  # fmt: skip
            responses = yield from self._msearch(plan, took)
            if plan.server_fusion and core.is_fusion_refusal(responses[plan.server_fusion]):
                self._refused |= {plan.server_fusion}  # later searches fuse on the client
                if request.fusion == "server":
                    raise_for_errors(self.index, responses, self.secrets)
                plan = core.plan_search(request, contract, vector, cluster=cluster,
                                        refused=self._refused, sparse=sparse)  # fmt: skip
                responses = yield from self._msearch(plan, took)
            if attempt == 0 and (yield from self._moved(responses, indices)):
                continue
            break
        raise_for_errors(self.index, responses, self.secrets)
        result = core.assemble(request, contract, plan, responses, took)
        if request.rerank:
            t0 = time.perf_counter()
            rerank = Work(lambda: self._rerank_scores(request, result, contract))
            scores = (yield rerank).body
            result = core.apply_rerank(result, request, scores, (time.perf_counter() - t0) * 1000)
            if warning := tuned.rerank_warning(self._tuning, fingerprint):
                result.warnings.append(warning)
        result = core.page(result, request, plan)
        result.took_ms["total"] = (time.perf_counter() - started) * 1000
        return result

    def _msearch(
        self, plan: SearchPlan, took: dict[str, float]
    ) -> Steps[dict[str, Mapping[str, Any]]]:
        t0 = time.perf_counter()
        answer = yield Call("msearch", {"searches": msearch_lines(self.index, plan.bodies)})
        if answer.error is not None:
            raise self._search_error(answer.error)
        took["request"] = took.get("request", 0.0) + (time.perf_counter() - t0) * 1000
        return split_responses(plan, answer.body)

    def _moved(
        self, responses: Mapping[str, Mapping[str, Any]], indices: frozenset[str]
    ) -> Steps[bool]:
        """Whether the alias may have moved since this search's contract was read from
        ``indices`` (an error, hits from another index, or none and another index behind the
        name): then read it, search again."""
        errors = any(core.response_error(r) is not None for r in responses.values())
        found = core.hit_indices(responses)
        if not errors and found and found <= indices:
            return False
        if not errors and not found:  # nothing to tell from: look at the name itself
            mapping = yield from self._mapping_steps()
            if frozenset(mapping) == indices:
                return False
        self._forget_contract()
        return True

    def _rerank_scores(
        self, request: SearchRequest, result: SearchResult, contract: IndexContract
    ) -> list[float] | None:
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
                return None
        return scores

    def _sparse_steps(
        self, request: SearchRequest, contract: IndexContract, took: dict[str, float]
    ) -> Steps[dict[str, float] | None]:
        """The query's sparse vector when the sparse leg is searched, by the leg's model."""
        if not needs_sparse(request) or contract.sparse is None:
            return None  # no sparse leg: plan_search says so
        encoder, leg = self.sparse_encoder, contract.sparse
        if encoder is None:  # the model the contract records where to find (shared, cached)
            from es_semantic.encoding.sparse_models import for_searcher

            found = (leg, self.index, self.encoder, self.sparse_from_contract)
            encoder = (yield Work(lambda: for_searcher(*found))).body
        contract.sparse.check(encoder.spec, self.index)
        t0, texts = time.perf_counter(), [request.query]
        vector: dict[str, float] = (yield Work(lambda: encoder.encode_queries(texts)[0])).body
        took["sparse_encode"] = (time.perf_counter() - t0) * 1000
        return vector

    def _encode_work(self, request: SearchRequest, encoder: QueryEncoder) -> Work:
        """The query's vector by ``encoder`` (the one fitting this search's contract): in a
        thread, or awaited from an async encoder (the service's batcher) by the async searcher."""
        texts = [request.query]

        def encode() -> list[float]:
            vector: list[float] = encoder.encode_queries(texts)[0].tolist()
            return vector

        if not isinstance(encoder, AsyncQueryEncoder):
            return Work(encode)

        async def aencode() -> list[float]:
            vector: list[float] = (await encoder.aencode_queries(texts))[0].tolist()
            return vector

        return Work(encode, aencode)

    def _search_error(self, exc: ApiError) -> SearchError:
        return SearchError(redact(f"search on {self.index!r} failed: {exc.message}", self.secrets))


def _needs_cluster(request: SearchRequest) -> bool:
    """Whether planning depends on the cluster's version and licence."""
    server_fusion = request.mode == "hybrid" and request.fusion in ("auto", "server", "linear")
    return server_fusion or request.oversample is not None or needs_sparse(request)


class Searcher(_SearcherBase[Elasticsearch]):
    """Keyword, kNN and hybrid search over an es-semantic index; safe to share across threads.

    >>> Searcher(es, "docs", Encoder()).search("what is bm25", mode="hybrid", k=5)  # doctest: +SKIP
    """

    def contract(self) -> IndexContract:
        """The index contract, checked against the encoder(s); read again after contract_ttl_s."""
        return run(self.es, self._contract_steps())

    def cluster(self) -> ClusterInfo:
        """The cluster's version and licence, probed once."""
        return run(self.es, self._cluster_steps())

    def search(
        self, query: str, *, mode: Mode = "hybrid", legs: Sequence[str] | None = None,
        k: int = 10, offset: int = 0, fusion: Fusion = "auto", alpha: float = 0.5,
        rank_constant: int = 60, window: int = DEFAULT_WINDOW, num_candidates: int | None = None,
        oversample: float | None = None, filters: Mapping[str, Any] | None = None,
        source: Sequence[str] | None = None, highlight: bool = False, exact: bool = False,
        rerank: bool = False, rerank_top: int = 20, rerank_budget_ms: float | None = None,
        rerank_weight: float | None = None, query_vector: Sequence[float] | None = None,
    ) -> SearchResult:  # fmt: skip
        """Search ``query``; see :class:`es_semantic.search.request.SearchRequest` for options.

        ``query_vector``: a vector already made with this index's encoder (skips encoding).
        """
        request = self._request(
            query, mode=mode, legs=legs, k=k, offset=offset, fusion=fusion, alpha=alpha,
            rank_constant=rank_constant, window=window, num_candidates=num_candidates,
            oversample=oversample, filters=filters, source=source, highlight=highlight,
            exact=exact, rerank=rerank, rerank_top=rerank_top, rerank_budget_ms=rerank_budget_ms,
            rerank_weight=rerank_weight,
        )  # fmt: skip
        return run(self.es, self._steps(request, query_vector))

    def search_image(
        self, image: Any, *, query: str | None = None, mode: Mode | None = None, k: int = 10,
        offset: int = 0, fusion: Fusion = "auto", alpha: float = 0.5,
        window: int = DEFAULT_WINDOW, num_candidates: int | None = None,
        filters: Mapping[str, Any] | None = None, source: Sequence[str] | None = None,
        exact: bool = False,
    ) -> SearchResult:  # fmt: skip
        """Search an image index by ``image`` (a path, its bytes, or a PIL image): kNN on its
        CLIP vector, or hybrid with ``query`` text on the caption field."""
        request = images.image_request(
            self, query, mode, k=k, offset=offset, fusion=fusion, alpha=alpha, window=window,
            num_candidates=num_candidates, filters=filters, source=source, exact=exact,
        )  # fmt: skip
        return run(self.es, images.image_search_steps(self, image, request))


class AsyncSearcher(_SearcherBase[AsyncElasticsearch]):
    """The async twin of :class:`Searcher` (``AsyncElasticsearch``; model work in a thread).

    Create one per application (e.g. in a FastAPI lifespan) and share it across requests.
    """

    async def contract(self) -> IndexContract:
        """The index contract, checked against the encoder(s); read again after contract_ttl_s."""
        return await run_async(self.es, self._contract_steps())

    async def cluster(self) -> ClusterInfo:
        """The cluster's version and licence, probed once."""
        return await run_async(self.es, self._cluster_steps())

    async def search(
        self, query: str, *, mode: Mode = "hybrid", legs: Sequence[str] | None = None,
        k: int = 10, offset: int = 0, fusion: Fusion = "auto", alpha: float = 0.5,
        rank_constant: int = 60, window: int = DEFAULT_WINDOW, num_candidates: int | None = None,
        oversample: float | None = None, filters: Mapping[str, Any] | None = None,
        source: Sequence[str] | None = None, highlight: bool = False, exact: bool = False,
        rerank: bool = False, rerank_top: int = 20, rerank_budget_ms: float | None = None,
        rerank_weight: float | None = None, query_vector: Sequence[float] | None = None,
    ) -> SearchResult:  # fmt: skip
        """Search ``query``; see :class:`es_semantic.search.request.SearchRequest` for options.

        ``query_vector``: a vector already made with this index's encoder (skips encoding).
        """
        request = self._request(
            query, mode=mode, legs=legs, k=k, offset=offset, fusion=fusion, alpha=alpha,
            rank_constant=rank_constant, window=window, num_candidates=num_candidates,
            oversample=oversample, filters=filters, source=source, highlight=highlight,
            exact=exact, rerank=rerank, rerank_top=rerank_top, rerank_budget_ms=rerank_budget_ms,
            rerank_weight=rerank_weight,
        )  # fmt: skip
        return await run_async(self.es, self._steps(request, query_vector))

    async def search_image(
        self, image: Any, *, query: str | None = None, mode: Mode | None = None, k: int = 10,
        offset: int = 0, fusion: Fusion = "auto", alpha: float = 0.5,
        window: int = DEFAULT_WINDOW, num_candidates: int | None = None,
        filters: Mapping[str, Any] | None = None, source: Sequence[str] | None = None,
        exact: bool = False,
    ) -> SearchResult:  # fmt: skip
        """Search an image index by ``image`` (a path, its bytes, or a PIL image): kNN on its
        CLIP vector, or hybrid with ``query`` text on the caption field."""
        request = images.image_request(
            self, query, mode, k=k, offset=offset, fusion=fusion, alpha=alpha, window=window,
            num_candidates=num_candidates, filters=filters, source=source, exact=exact,
        )  # fmt: skip
        return await run_async(self.es, images.image_search_steps(self, image, request))
