"""The HTTP service: embeddings (OpenAI and text-embeddings-inference shapes), rerank, search.

FastAPI (the ``serve`` extra), chosen over bare Starlette for request validation and the
OpenAPI page at ``/docs`` from the same models. Route handlers are top-level functions beside
their request models (``embeddings.py``, ``indices.py``), reaching the running
:class:`~es_semantic.service.state.ServiceState` through a dependency. Model work runs through
the :class:`~es_semantic.service.batcher.DynamicBatcher`; searches use one
:class:`~es_semantic.search.searcher.AsyncSearcher` per index with the batched encoder.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated

import elastic_transport
from elasticsearch import AuthenticationException, AuthorizationException
from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response

from es_semantic.config import ESConfig
from es_semantic.elastic.client import connection_error
from es_semantic.errors import (
    ConfigError,
    ConnectionFailedError,
    EsSemanticError,
    IndexContractError,
    InputError,
    SearchError,
    SearchRefused,
)
from es_semantic.redact import redact
from es_semantic.service import embeddings, images, indices
from es_semantic.service.batcher import Overloaded
from es_semantic.service.guard import OPEN_ROUTES, Guard, RedactingFilter
from es_semantic.service.metrics import ServiceMetrics
from es_semantic.service.settings import ServiceConfig
from es_semantic.service.state import (
    RETRY,
    HTTPProblem,
    ServiceState,
    check_inputs,
    service_state,
)

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.images import ImageEncoder
    from es_semantic.encoding.reranker import CrossEncoder
    from es_semantic.encoding.sparse import SparseEncoder

__all__ = ["OPEN_ROUTES", "HTTPProblem", "ServiceConfig", "check_inputs", "create_app"]
ERROR_STATUS: tuple[tuple[type[EsSemanticError], int], ...] = (
    (InputError, 400), (ConfigError, 400), (IndexContractError, 409),
    (ConnectionFailedError, 503), (SearchRefused, 400), (SearchError, 502),
)  # fmt: skip
SERVER_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access")
UNREACHABLE = (elastic_transport.ConnectionError, elastic_transport.ConnectionTimeout,
               AuthenticationException, AuthorizationException)  # fmt: skip
State = Annotated[ServiceState, Depends(service_state)]


def create_app(
    encoder: Encoder,
    *,
    config: ServiceConfig | None = None,
    es_config: ESConfig | None = None,
    reranker: CrossEncoder | None = None,
    sparse_encoder: SparseEncoder | None = None,
    image_encoder: ImageEncoder | None = None,
) -> FastAPI:
    """The service's ASGI app (run it with uvicorn: ``es-semantic serve``); ``sparse_encoder``:
    the model of the indices' sparse leg, for ``mode=sparse`` and ``legs``; ``image_encoder``:
    a CLIP model for image inputs and image indices (``encoder`` itself when it is one)."""
    config = config or ServiceConfig()
    metrics = ServiceMetrics()
    state = ServiceState(config, encoder, reranker, es_config, metrics)
    state.sparse_encoder = sparse_encoder
    state.image_encoder = image_encoder or (encoder if getattr(encoder, "multimodal", False)
                                            else None)  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        masking = RedactingFilter(state.secrets)
        for name in SERVER_LOGGERS:
            logging.getLogger(name).addFilter(masking)
        await state.start()  # inside the serving loop
        try:
            yield
        finally:
            await state.stop()
            for name in SERVER_LOGGERS:
                logging.getLogger(name).removeFilter(masking)

    app = FastAPI(title="es-semantic", lifespan=lifespan, redoc_url=None)
    app.state.service = state
    # flat: one label per route
    for router in (embeddings.router, indices.router, images.router, health):
        app.router.routes.extend(router.routes)
    app.add_exception_handler(HTTPProblem, _on_problem)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, _on_invalid)  # type: ignore[arg-type]
    app.add_exception_handler(Overloaded, _on_overloaded)  # type: ignore[arg-type]
    app.add_exception_handler(EsSemanticError, _on_error)  # type: ignore[arg-type]
    for unreachable in UNREACHABLE:  # the cluster down or refusing us: not an internal error
        app.add_exception_handler(unreachable, _on_unreachable)
    app.add_middleware(Guard, api_keys=config.api_keys, max_body_bytes=config.max_body_bytes,
                       max_body_seconds=config.max_body_seconds,
                       metrics=metrics, secrets=state.secrets)  # fmt: skip
    if config.cors_origins:  # outermost: it answers preflights, which carry no key
        from fastapi.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=list(config.cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["*"])  # fmt: skip
    return app


async def _on_problem(request: Request, problem: HTTPProblem) -> Response:
    return _problem(problem)


async def _on_invalid(request: Request, exc: RequestValidationError) -> Response:
    """One sentence naming the first bad field; FastAPI's default echoes the whole body."""
    errors = exc.errors()
    first = errors[0] if errors else {}
    where = ".".join(str(part) for part in first.get("loc", ()) if part != "body") or "body"
    if len(where) > 100:  # a field name the client made up: named, not echoed whole
        where = where[:60] + "..."
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    message = f"{where}: {first.get('msg', 'invalid')}{more}; see /docs for the request shape"
    return _problem(HTTPProblem(422, message))


async def _on_overloaded(request: Request, exc: Overloaded) -> Response:
    return _problem(HTTPProblem(429, f"busy: {exc}; retry shortly", RETRY))


async def _on_error(request: Request, exc: EsSemanticError) -> Response:
    status = next((code for kind, code in ERROR_STATUS if isinstance(exc, kind)), 500)
    return _problem(HTTPProblem(status, redact(str(exc), service_state(request).secrets)))


async def _on_unreachable(request: Request, exc: Exception) -> Response:
    """A 503 naming the cluster (secrets masked) and what to check, with Retry-After."""
    state = service_state(request)
    message = str(connection_error(state.es_config or ESConfig(), exc))
    return _problem(HTTPProblem(503, redact(message, state.secrets), RETRY))


def _problem(problem: HTTPProblem) -> Response:
    return JSONResponse({"error": problem.message}, problem.status, headers=problem.headers)


health = APIRouter()


@health.get("/healthz")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz")
async def readyz(state: State) -> Response:
    problems = []
    if state.aes is not None:
        try:
            await state.aes.options(request_timeout=5).info()
        except Exception as exc:  # any failure means: not ready
            problems.append(redact(f"cluster: {type(exc).__name__}", state.secrets))
    body = {
        "status": "ready" if not problems else "not ready",
        "model": state.encoder.config.model_name,
        "encoder": state.encoder.config.ran(),  # the backend and precision that run
        "problems": problems,
    }
    return JSONResponse(body, 200 if not problems else 503)


@health.get("/metrics")
async def prometheus(state: State) -> Response:
    state.metrics.queue_depth(state.batcher.depth())
    return PlainTextResponse(state.metrics.render(), media_type=state.metrics.content_type)
