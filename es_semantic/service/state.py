"""What the running service holds: its limits, the batcher, the clients, a bounded cache of
searchers, the in-flight count of search and rerank; the batched query encoder."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from importlib import resources
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from fastapi import Request

from es_semantic.config import EncoderConfig, ESConfig
from es_semantic.elastic.calls import run_async
from es_semantic.elastic.client import make_async_client
from es_semantic.encoding import sparse_models
from es_semantic.errors import EsSemanticError, check_unicode
from es_semantic.indexing.admin import read_contract_steps
from es_semantic.schema.contract import SparseLeg
from es_semantic.search.searcher import AsyncSearcher
from es_semantic.service.batcher import DynamicBatcher, Kind, Overloaded
from es_semantic.service.metrics import ServiceMetrics
from es_semantic.service.settings import ServiceConfig

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.reranker import CrossEncoder
    from es_semantic.types import SearchResult

PLAYGROUND = "playground.html"
logger = logging.getLogger("es_semantic.service")
RETRY = {"Retry-After": "1"}
MAX_INDEX_BYTES = 255


class HTTPProblem(Exception):
    """An error answer: status, a one-line message, optional headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


def check_inputs(texts: Sequence[str], config: ServiceConfig, what: str = "input") -> list[str]:
    """The texts, or a 413 naming the one over the limits."""
    if len(texts) > config.max_inputs:
        raise HTTPProblem(413, f"{len(texts)} inputs; the limit is {config.max_inputs} a request")
    for i, text in enumerate(texts):
        name = f"{what} #{i}" if what == "input" else what
        if len(text) > config.max_chars:
            raise HTTPProblem(
                413, f"{name} has {len(text)} characters; the limit is {config.max_chars}"
            )
        check_unicode(text, name)
    return list(texts)


class BatchedEncoder:
    """The encoder's query interface, each call going through the service's dynamic batcher:
    what the service's searchers encode with (so they run every contract check)."""

    def __init__(self, encoder: Encoder, batcher: DynamicBatcher) -> None:
        self._config, self.batcher, self.encoder = encoder.config, batcher, encoder
        self.loop: asyncio.AbstractEventLoop | None = None  # set when the service starts

    @property
    def config(self) -> EncoderConfig:
        return self._config

    @property
    def device(self) -> Any:
        """The query encoder's device (``--device``): where contract-found sparse models run."""
        return getattr(self.encoder, "device", None)

    async def aencode_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        return await self.batcher.embed(list(texts), "query")

    def encode_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]:
        """From a thread other than the service's event loop (which awaits the async form)."""
        assert self.loop is not None, "the service has not started"
        future = asyncio.run_coroutine_threadsafe(self.aencode_queries(texts), self.loop)
        return future.result()


class ServiceState:
    """The batcher, clients and searchers of one app (``app.state.service``)."""

    def __init__(self, config: ServiceConfig, encoder: Encoder, reranker: CrossEncoder | None,
                 es_config: ESConfig | None, metrics: ServiceMetrics) -> None:  # fmt: skip
        self.config, self.encoder, self.reranker = config, encoder, reranker
        self.es_config, self.metrics = es_config, metrics
        self.secrets = [*(es_config.secrets() if es_config else []), *config.api_keys]
        self.batcher = DynamicBatcher(
            self._encode, max_batch_tokens=config.max_batch_tokens,
            max_wait_ms=config.max_wait_ms, max_queue=config.max_queue,
            enabled=config.batching, observe=metrics.observe_batch,
        )  # fmt: skip
        self.query_encoder = BatchedEncoder(encoder, self.batcher)
        self.aes: AsyncElasticsearch | None = None
        self.searchers: OrderedDict[str, AsyncSearcher] = OrderedDict()
        self.sparse_encoder: Any = None  # the sparse leg's model (serve --sparse-model)
        self.image_encoder: Any = None  # a CLIP model (serve --image-model): images, image indices
        self.in_flight = 0
        self._page: str | None = None

    async def start(self) -> None:
        """Inside the serving loop: the batcher's workers and the async client."""
        self.query_encoder.loop = asyncio.get_running_loop()
        self.batcher.start()
        if self.es_config is not None:
            self.aes = make_async_client(self.es_config)
            await self.load_sparse_models()

    async def load_sparse_models(self) -> None:
        """At start, without ``--sparse-model``: the sparse models of the indices named with
        ``--index`` (the allow-list: no other index's contract names a model this service
        loads), found from their contracts on the query encoder's device; one that cannot be
        found is a one-line warning naming ``--sparse-model``."""
        if self.sparse_encoder is not None or self.aes is None:
            return
        for index in self.config.indices:
            try:
                leg = (await run_async(self.aes, read_contract_steps(index))).sparse
                if leg is not None:
                    await asyncio.to_thread(sparse_models.for_searcher, leg, index,
                                            self.query_encoder, True)  # fmt: skip
            except EsSemanticError as exc:
                logger.warning("%s", exc)
            except Exception as exc:  # the cluster may be down at start
                logger.warning("index %s: sparse model not loaded at start (%s)", index,
                               type(exc).__name__)  # fmt: skip

    async def runs_sparse(self, index: str, leg: SparseLeg | None) -> bool:
        """Whether this service can search the index's sparse leg: the model given matches it
        (else a search is a 409), or, for an index named with ``--index``, it is found."""
        if leg is None:
            return False
        try:
            if self.sparse_encoder is not None:
                leg.check(self.sparse_encoder.spec, index)
            elif index not in self.config.indices:
                return False  # found from no contract: serve --index names those
            elif sparse_models.loaded(leg, self._device()) is None:
                await asyncio.to_thread(sparse_models.locate, leg, index)
        except EsSemanticError:
            return False
        return True

    def _device(self) -> str | None:
        device = self.query_encoder.device
        return str(device) if device is not None else None

    async def stop(self) -> None:
        await self.batcher.stop()
        if self.aes is not None:
            await self.aes.close()

    def _encode(self, texts: list[str], kind: Kind) -> npt.NDArray[np.float32]:
        started = time.perf_counter()
        if kind == "query":
            vectors = self.encoder.encode_queries(texts)
        else:
            vectors = self.encoder.encode_documents(texts)
        self.metrics.stage("encode", time.perf_counter() - started)
        return vectors

    async def embed(self, texts: list[str], kind: Kind) -> npt.NDArray[np.float32]:
        try:
            return await self.batcher.embed(texts, kind)
        except Overloaded as exc:
            raise HTTPProblem(429, f"busy: {exc}; retry shortly", RETRY) from None

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """One search or rerank in flight; beyond ``max_concurrent`` a 429 at once."""
        if self.in_flight >= self.config.max_concurrent:
            raise HTTPProblem(429, f"busy: {self.in_flight} searches and reranks in flight "
                              f"(the limit); retry shortly", RETRY)  # fmt: skip
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1

    def playground_page(self) -> str:
        if self._page is None:
            self._page = resources.files(__package__).joinpath(PLAYGROUND).read_text("utf-8")
        return self._page

    async def index_names(self) -> list[str]:
        """The indices served: the ones named at start, else the cluster's (no system ones)."""
        if self.config.indices:
            return list(self.config.indices)
        if self.aes is None:
            return []
        rows: Any = await self.aes.cat.indices(format="json", h="index")
        aliases: Any = await self.aes.cat.aliases(format="json", h="alias")
        names = {str(r["index"]) for r in rows} | {str(a["alias"]) for a in aliases}
        return sorted(n for n in names if not n.startswith("."))

    def check_index(self, index: str) -> None:
        """A 404 for an index not on the allow-list, a 503 without a cluster."""
        if len(index.encode()) > MAX_INDEX_BYTES:  # not a name Elasticsearch takes
            raise HTTPProblem(400, f"the index name is {len(index.encode())} bytes; "
                              f"Elasticsearch's limit is {MAX_INDEX_BYTES}")  # fmt: skip
        if self.config.indices and index not in self.config.indices:
            raise HTTPProblem(404, f"index {index!r} is not served here")
        if self.aes is None or self.es_config is None:
            raise HTTPProblem(503, "no Elasticsearch is configured for this service")

    def searcher(self, index: str) -> AsyncSearcher:
        """The cached searcher of ``index``, or a new one (kept by :meth:`keep` once its index
        answered, so unknown names grow nothing)."""
        self.check_index(index)
        assert self.aes is not None
        searcher = self.searchers.get(index)
        if searcher is None:
            # the searcher takes whichever encoder fits the index's contract: a CLIP model's
            # text tower for an image index
            encoders = [self.query_encoder, *([self.image_encoder] if self.image_encoder else [])]
            searcher = AsyncSearcher(self.aes, index, encoders, reranker=self.reranker,
                                     sparse_encoder=self.sparse_encoder,
                                     sparse_from_contract=index in self.config.indices)  # fmt: skip
        return searcher

    def keep(self, index: str, searcher: AsyncSearcher) -> None:
        """Cache a searcher whose index answered (least recently used out)."""
        self.searchers[index] = searcher
        self.searchers.move_to_end(index)
        while len(self.searchers) > self.config.max_searchers:
            self.searchers.popitem(last=False)

    async def search(self, index: str, query: str, **params: Any) -> SearchResult:
        """``AsyncSearcher.search`` with the batched encoder."""
        searcher = self.searcher(index)
        result = await searcher.search(query, **params)
        self.keep(index, searcher)
        return result


def service_state(request: Request) -> ServiceState:
    """The app's state, for route handlers (``Depends(service_state)``)."""
    state: ServiceState = request.app.state.service
    return state
