"""The HTTP service: embeddings (OpenAI and text-embeddings-inference shapes), rerank, search.

FastAPI (the ``serve`` extra), chosen over bare Starlette for request validation and the
OpenAPI page at ``/docs`` from the same models. Model work runs in threads through the
:class:`~es_semantic.service.batching.DynamicBatcher`; searches use one
:class:`~es_semantic.search.searcher.AsyncSearcher` per index, fed the batched query vector.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hmac
import json
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from pydantic import BaseModel, Field
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from es_semantic.client import make_async_client, make_client
from es_semantic.config import ESConfig
from es_semantic.errors import (
    ConfigError,
    ConnectionFailedError,
    EsSemanticError,
    IndexContractError,
    InputError,
    SearchError,
)
from es_semantic.indexing.admin import index_info
from es_semantic.redact import redact
from es_semantic.schema.similarity import unit_rows
from es_semantic.search.searcher import AsyncSearcher
from es_semantic.service.batching import DynamicBatcher, Kind, Overloaded
from es_semantic.service.metrics import ServiceMetrics

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.reranker import CrossEncoder

OPEN_ROUTES = ("/", "/healthz", "/readyz", "/docs", "/openapi.json")  # "/": a static page
PLAYGROUND = "playground.html"
ERROR_STATUS: tuple[tuple[type[EsSemanticError], int], ...] = (
    (InputError, 400), (ConfigError, 400), (IndexContractError, 409),
    (ConnectionFailedError, 503), (SearchError, 502),
)  # fmt: skip


@dataclass(frozen=True)
class ServiceConfig:
    """Limits and security of the service."""

    indices: tuple[str, ...] = ()  # the indices clients may search; () = any
    api_keys: tuple[str, ...] = ()  # when set, every route but the health checks needs one
    max_inputs: int = 512
    max_chars: int = 20_000
    max_batch_tokens: int = 16_384
    max_wait_ms: float = 0.0
    max_queue: int = 512
    batching: bool = True
    cors_origins: tuple[str, ...] = ()
    eval_report: Mapping[str, Any] | None = None  # an `eval --json` report for the playground


class HTTPProblem(Exception):
    """An error answer: status, a one-line message, optional headers."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}


class OpenAIEmbeddingRequest(BaseModel):
    input: str | list[str]
    model: str | None = None
    encoding_format: Literal["float", "base64"] = "float"
    dimensions: int | None = None
    user: str | None = None
    input_type: Kind = Field("document", description="es-semantic: query or document prefix")


class EmbedRequest(BaseModel):
    inputs: str | list[str]
    normalize: bool = True
    truncate: bool = False
    prompt_name: str | None = None


class RerankRequest(BaseModel):
    query: str
    texts: list[str]
    raw_scores: bool = False
    return_text: bool = False
    truncate: bool = False


class SearchBody(BaseModel):
    """The parameters of ``Searcher.search``."""

    model_config = {"extra": "forbid"}
    query: str
    mode: Literal["keyword", "knn", "hybrid"] = "hybrid"
    k: int = 10
    offset: int = 0
    fusion: Literal["auto", "server", "rrf", "weighted", "linear"] = "auto"
    alpha: float = 0.5
    rank_constant: int = 60
    window: int = 100
    num_candidates: int | None = None
    oversample: float | None = None
    filters: dict[str, Any] | None = None
    source: list[str] | None = None
    highlight: bool = False
    exact: bool = False
    rerank: bool = False
    rerank_top: int = 20
    rerank_budget_ms: float | None = None


class _State:
    """What the running service holds: the batcher, clients and one searcher per index."""

    def __init__(self, config: ServiceConfig, encoder: Encoder, reranker: CrossEncoder | None,
                 es_config: ESConfig | None, metrics: ServiceMetrics) -> None:  # fmt: skip
        self.config, self.encoder, self.reranker = config, encoder, reranker
        self.es_config, self.metrics = es_config, metrics
        self.secrets = es_config.secrets() if es_config else []
        self.batcher = DynamicBatcher(
            self._encode, max_batch_tokens=config.max_batch_tokens,
            max_wait_ms=config.max_wait_ms, max_queue=config.max_queue,
            enabled=config.batching, observe=metrics.observe_batch,
        )  # fmt: skip
        self.aes: Any = None
        self.searchers: dict[str, AsyncSearcher] = {}
        self._page: str | None = None

    def _encode(self, texts: list[str], kind: Kind) -> np.ndarray:
        started = time.perf_counter()
        if kind == "query":
            vectors = self.encoder.encode_queries(texts)
        else:
            vectors = self.encoder.encode_documents(texts)
        self.metrics.stage("encode", time.perf_counter() - started)
        return vectors

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
        rows = await self.aes.cat.indices(format="json", h="index")
        aliases = await self.aes.cat.aliases(format="json", h="alias")
        names = {str(r["index"]) for r in rows} | {str(a["alias"]) for a in aliases}
        return sorted(n for n in names if not n.startswith("."))

    def searcher(self, index: str) -> AsyncSearcher:
        if self.config.indices and index not in self.config.indices:
            raise HTTPProblem(404, f"index {index!r} is not served here")
        if self.aes is None:
            raise HTTPProblem(503, "no Elasticsearch is configured for this service")
        if index not in self.searchers:
            self.searchers[index] = AsyncSearcher(self.aes, index, self.encoder,
                                                  reranker=self.reranker)  # fmt: skip
        return self.searchers[index]


def check_inputs(texts: Sequence[str], config: ServiceConfig) -> list[str]:
    if len(texts) > config.max_inputs:
        raise HTTPProblem(413, f"{len(texts)} inputs; the limit is {config.max_inputs} a request")
    for i, text in enumerate(texts):
        if len(text) > config.max_chars:
            raise HTTPProblem(
                413, f"input #{i} has {len(text)} characters; the limit is {config.max_chars}"
            )
    return list(texts)


def create_app(
    encoder: Encoder,
    *,
    config: ServiceConfig | None = None,
    es_config: ESConfig | None = None,
    reranker: CrossEncoder | None = None,
) -> FastAPI:
    """The service's ASGI app (run it with uvicorn: ``es-semantic serve``)."""
    config = config or ServiceConfig()
    metrics = ServiceMetrics()
    state = _State(config, encoder, reranker, es_config, metrics)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        if es_config is not None:
            state.aes = make_async_client(es_config)  # created inside the serving loop
        try:
            yield
        finally:
            await state.batcher.stop()
            if state.aes is not None:
                await state.aes.close()

    app = FastAPI(title="es-semantic", lifespan=lifespan)
    if config.cors_origins:
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["*"])  # fmt: skip

    app.add_middleware(_Guard, config=config, metrics=metrics)

    @app.exception_handler(HTTPProblem)
    async def on_problem(request: Request, problem: HTTPProblem) -> Response:
        return _problem(problem)

    @app.exception_handler(EsSemanticError)
    async def on_error(request: Request, exc: EsSemanticError) -> Response:
        status = next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 500)
        return _problem(HTTPProblem(status, redact(str(exc), state.secrets)))

    async def embed(texts: list[str], kind: Kind) -> np.ndarray:
        try:
            return await state.batcher.embed(texts, kind)
        except Overloaded as exc:
            raise HTTPProblem(429, f"busy: {exc}; retry shortly", {"Retry-After": "1"}) from None

    @app.post("/v1/embeddings")
    async def openai_embeddings(body: OpenAIEmbeddingRequest) -> dict[str, Any]:
        """OpenAI-compatible embeddings (``openai.OpenAI(base_url=...).embeddings.create``)."""
        texts = check_inputs([body.input] if isinstance(body.input, str) else body.input, config)
        vectors = await embed(texts, body.input_type)
        if body.dimensions is not None and body.dimensions != encoder.dim:
            raise HTTPProblem(400, f"dimensions={body.dimensions}: this model gives {encoder.dim}")
        tokens = sum(len(t.split()) for t in texts)
        data = [
            {
                "object": "embedding",
                "index": i,
                "embedding": _encode_vector(v, body.encoding_format),
            }
            for i, v in enumerate(vectors)
        ]
        return {
            "object": "list",
            "data": data,
            "model": body.model or encoder.config.model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
        }

    @app.post("/embed")
    async def tei_embed(body: EmbedRequest) -> Response:
        """text-embeddings-inference ``/embed``: one vector per input."""
        texts = check_inputs([body.inputs] if isinstance(body.inputs, str) else body.inputs, config)
        window = encoder.config.max_length
        # a token covers at least one character: only texts longer than the window can overflow
        long = [t for t in texts if len(t) + 2 > window]
        if not body.truncate and long:
            for i, count in enumerate(await asyncio.to_thread(encoder.count_tokens, texts)):
                if count > window:
                    raise HTTPProblem(
                        413,
                        f"input #{i} has {count} tokens, over the model's "
                        f"{window}: shorten it or send truncate=true",
                    )
        kind: Kind = "query" if body.prompt_name == "query" else "document"
        vectors = await embed(texts, kind)
        if body.normalize:
            vectors = unit_rows(vectors)
        return Response(json.dumps(vectors.tolist()), media_type="application/json")

    @app.post("/rerank")
    async def tei_rerank(body: RerankRequest) -> list[dict[str, Any]]:
        """text-embeddings-inference ``/rerank``: texts by relevance to the query, best first."""
        if reranker is None:
            raise HTTPProblem(404, "no reranker is configured: start the service with --rerank")
        texts = check_inputs(body.texts, config)
        started = time.perf_counter()
        scores = await asyncio.to_thread(reranker.score, body.query, texts)
        metrics.stage("rerank", time.perf_counter() - started)
        order = sorted(range(len(texts)), key=lambda i: -float(scores[i]))
        return [{"index": i, "score": float(scores[i]),
                 **({"text": texts[i]} if body.return_text else {})} for i in order]  # fmt: skip

    @app.post("/indices/{index}/search")
    async def search(index: str, body: SearchBody) -> dict[str, Any]:
        """``Searcher.search`` over ``index``; the JSON of ``es-semantic search --json``."""
        searcher = state.searcher(index)
        params = body.model_dump(exclude={"query"})
        if params["rerank"] and reranker is None:
            raise HTTPProblem(400, "rerank needs a reranker: start the service with --rerank")
        vector = None
        if body.mode != "keyword":
            vector = (await embed(check_inputs([body.query], config), "query"))[0].tolist()
        result = await searcher.search(body.query, query_vector=vector, **params)
        for stage, ms in result.took_ms.items():
            metrics.stage(stage, ms / 1000)
        return result.to_json()

    @app.get("/indices/{index}")
    async def describe(index: str) -> dict[str, Any]:
        """What ``es-semantic info --json`` prints for ``index``."""
        state.searcher(index)  # the same allow-list
        assert es_config is not None

        def info() -> dict[str, Any]:
            es = make_client(es_config, check=False)
            try:
                return index_info(es, index)
            finally:
                es.close()

        return await asyncio.to_thread(info)

    @app.get("/", include_in_schema=False)
    async def playground() -> Response:
        """The playground: modes side by side, and eval reports as bar charts."""
        return HTMLResponse(state.playground_page())

    @app.get("/playground/settings")
    async def playground_settings() -> dict[str, Any]:
        """What the playground offers: indices, whether rerank is on, a loaded eval report."""
        return {
            "indices": await state.index_names(),
            "rerank": reranker is not None,
            "model": encoder.config.model_name,
            "eval_report": config.eval_report is not None,
        }

    @app.get("/playground/eval-report")
    async def playground_eval_report() -> dict[str, Any]:
        """The ``eval --json`` report given with ``--eval-report FILE``."""
        if config.eval_report is None:
            raise HTTPProblem(404, "no eval report: start the service with --eval-report FILE")
        return dict(config.eval_report)

    @app.get("/healthz")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz")
    async def readyz() -> Response:
        problems = []
        if state.aes is not None:
            try:
                await state.aes.options(request_timeout=5).info()
            except Exception as exc:  # any failure means: not ready
                problems.append(redact(f"cluster: {type(exc).__name__}", state.secrets))
        body = {
            "status": "ready" if not problems else "not ready",
            "model": encoder.config.model_name,
            "problems": problems,
        }
        return JSONResponse(body, 200 if not problems else 503)

    @app.get("/metrics")
    async def prometheus() -> Response:
        metrics.queue_depth(state.batcher.depth())
        return PlainTextResponse(metrics.render(), media_type=metrics.content_type)

    return app


class _Guard:
    """API keys and request metrics, as plain ASGI middleware (no per-request task or
    streaming wrapper, unlike ``@app.middleware``)."""

    def __init__(self, app: ASGIApp, *, config: ServiceConfig, metrics: ServiceMetrics) -> None:
        self.app, self.config, self.metrics = app, config, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request = Request(scope)
        status = {"code": 500}

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = int(message["status"])
            await send(message)

        open_route = scope["path"] in OPEN_ROUTES
        if self.config.api_keys and not open_route and not _authorized(request, self.config):
            denied = JSONResponse({"error": "missing or wrong API key"}, 401)
            await denied(scope, receive, sending)
        else:
            await self.app(scope, receive, sending)
        label = _route_label(request)
        self.metrics.request(label, status["code"], time.perf_counter() - started)


def _authorized(request: Request, config: ServiceConfig) -> bool:
    given = request.headers.get("x-api-key") or ""
    bearer = request.headers.get("authorization") or ""
    if bearer.lower().startswith("bearer "):
        given = given or bearer[7:].strip()
    # constant-time against every key (no early exit that would time the match)
    matches = [hmac.compare_digest(given.encode(), key.encode()) for key in config.api_keys]
    return bool(given) and any(matches)


def _problem(problem: HTTPProblem) -> Response:
    return JSONResponse({"error": problem.message}, problem.status, headers=problem.headers)


def _route_label(request: Request) -> str:
    """The route's template (``/indices/{index}/search``), never the raw path: index names
    would make the metric's label set grow without bound."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


def _encode_vector(vector: np.ndarray, encoding: str) -> list[float] | str:
    if encoding == "base64":
        return base64.b64encode(vector.astype("<f4").tobytes()).decode()
    return [float(x) for x in vector]
