"""A FastAPI backend that searches an es-semantic index through one shared AsyncSearcher.

    pip install 'es-semantic[async,serve,models]'
    ES_URL=http://localhost:9200 SEARCH_INDEX=docs uvicorn fastapi_backend:app --port 8000
    curl 'localhost:8000/search?q=rotate+api+keys&mode=hybrid&k=5&lang=en'

The model and the client are made once, in the lifespan, and shared by every request (the
searcher reads the index contract once and checks it against the model). Filters come from
query parameters (only the fields in FILTER_FIELDS); errors map to HTTP statuses in one place.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any, Literal

from elastic_transport import TransportError
from elasticsearch import AsyncElasticsearch
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse

from es_semantic import (
    AsyncSearcher,
    ConnectionFailedError,
    Encoder,
    ESConfig,
    EsSemanticError,
    IndexContractError,
    InputError,
    SearchError,
)

INDEX = os.environ.get("SEARCH_INDEX", "docs")
FILTER_FIELDS = ("lang", "year")  # metadata fields the index was built with (--metadata-field)
STATUS = {InputError: 400, IndexContractError: 409, ConnectionFailedError: 503, SearchError: 502}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """One client, one model, one searcher for the life of the process."""
    config = ESConfig.from_env()  # ES_URL, ES_API_KEY, ... (never hard-code secrets)
    es = AsyncElasticsearch(**config.client_kwargs())
    encoder = Encoder(os.environ.get("ES_SEMANTIC_MODEL"))  # None: the packaged MiniLM
    app.state.searcher = AsyncSearcher(es, INDEX, encoder)
    try:
        yield
    finally:
        await es.close()


app = FastAPI(title="search backend", lifespan=lifespan)


@app.exception_handler(EsSemanticError)
async def on_error(request: Request, exc: EsSemanticError) -> JSONResponse:
    """Each es-semantic error as one status and its one-line message (secrets never in it)."""
    status = next((code for kind, code in STATUS.items() if isinstance(exc, kind)), 500)
    return JSONResponse({"error": str(exc)}, status_code=status)


@app.exception_handler(TransportError)
async def on_unreachable(request: Request, exc: TransportError) -> JSONResponse:
    """The cluster did not answer (connection refused, timeout): 503, the client may retry."""
    return JSONResponse({"error": "the search cluster cannot be reached; retry shortly"}, 503)


@app.get("/search")
async def search(
    request: Request,
    q: Annotated[str, Query(min_length=1, max_length=1000)],
    mode: Literal["keyword", "knn", "hybrid"] = "hybrid",
    k: Annotated[int, Query(ge=1, le=100)] = 10,
) -> dict[str, Any]:
    """``/search?q=...&mode=hybrid&k=10&lang=en&lang=fr&year=2024``: filters are the query
    parameters named in FILTER_FIELDS (a repeated one means any of its values)."""
    filters: dict[str, Any] = {}
    for field in FILTER_FIELDS:
        values = request.query_params.getlist(field)
        if values:
            filters[field] = values[0] if len(values) == 1 else values
    searcher: AsyncSearcher = request.app.state.searcher
    result = await searcher.search(q, mode=mode, k=k, filters=filters or None)
    return {
        "hits": [
            {"id": h.id, "score": h.score, "title": h.source.get("title")} for h in result.hits
        ],
        "took_ms": result.took_ms,
    }
