"""Search, index info and playground routes. A search goes through ``AsyncSearcher.search``
with the service's batched encoder: the contract and alias-move checks of the library, never a
vector made outside them."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel

from es_semantic.elastic.calls import run_async
from es_semantic.errors import check_unicode
from es_semantic.indexing.admin import index_info_steps
from es_semantic.schema.contract import META_KEY, IndexContract
from es_semantic.search.request import Fusion
from es_semantic.search.tuned import RERANK_HURTS
from es_semantic.service.settings import ServiceConfig
from es_semantic.service.state import HTTPProblem, ServiceState, service_state

router = APIRouter()
logger = logging.getLogger("es_semantic.service")
MAX_FIELDS = 256  # names in a search's source list
MAX_NAME_CHARS = 256  # characters of a leg, source field or filter field name
_warned: set[str] = set()  # indices whose hurting reranker was logged (once each)
State = Annotated[ServiceState, Depends(service_state)]


class SearchBody(BaseModel):
    """The parameters of ``Searcher.search``."""

    model_config = {"extra": "forbid"}
    query: str
    mode: Literal["keyword", "knn", "sparse", "hybrid"] = "hybrid"
    legs: list[str] | None = None
    k: int = 10
    offset: int = 0
    fusion: Fusion = "auto"
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
    rerank_weight: float | None = None


def check_caps(body: SearchBody, config: ServiceConfig) -> None:
    """A 422 naming the parameter over this service's maximum (the `serve --max-*` options)."""
    rerank_top = body.rerank_top if body.rerank else None
    caps = [
        ("k", body.k, config.max_k),
        ("offset+k", body.offset + body.k, config.max_k),
        ("window", body.window, config.max_window),
        ("num_candidates", body.num_candidates, config.max_num_candidates),
        ("rerank_top", rerank_top, config.max_rerank_top),
    ]
    for name, value, limit in caps:
        if value is not None and value > limit:
            option = "max-k" if name == "offset+k" else f"max-{name.replace('_', '-')}"
            raise HTTPProblem(422, f"{name}={value} is over this service's maximum of {limit} "
                              f"(serve --{option})")  # fmt: skip
    if len(body.query) > config.max_chars:
        raise HTTPProblem(413, f"query has {len(body.query)} characters; the limit is "
                          f"{config.max_chars}")  # fmt: skip
    check_unicode(body.query, "query")
    names = [*(body.legs or ()), *(body.source or ()), *(body.filters or {})]
    if len(body.legs or ()) > 3 or len(body.source or ()) > MAX_FIELDS:
        raise HTTPProblem(422, f"legs takes at most 3 names and source at most {MAX_FIELDS} "
                          "fields")  # fmt: skip
    if any(len(name) > MAX_NAME_CHARS for name in names):
        raise HTTPProblem(422, f"a leg or field name is over {MAX_NAME_CHARS} characters")
    for name in names:
        check_unicode(name, "a leg or field name")
    check_filters(body.filters, config)


def check_filters(filters: Mapping[str, Any] | None, config: ServiceConfig) -> None:
    """A 422 when the filters hold more values than ``max_filter_values`` (each list item or
    range bound is one), a 413 naming a text value over ``max_chars``; their shapes are
    checked against the index's fields by the searcher (a 400 naming the field)."""
    count = 0
    for field, value in (filters or {}).items():
        items = list(value.values()) if isinstance(value, Mapping) else value
        items = items if isinstance(items, list) else [items]
        count += max(len(items), 1)
        for item in items:
            if isinstance(item, str) and len(item) > config.max_chars:
                raise HTTPProblem(413, f"a value of filter {field!r} has {len(item)} characters;"
                                  f" the limit is {config.max_chars}")  # fmt: skip
            if isinstance(item, str):
                check_unicode(item, f"a value of filter {field!r}")
    if count > config.max_filter_values:
        raise HTTPProblem(422, f"the filters hold {count} values; this service's maximum is "
                          f"{config.max_filter_values} (serve --max-filter-values)")  # fmt: skip


@router.post("/indices/{index}/search")
async def search(index: str, body: SearchBody, state: State) -> dict[str, Any]:
    """``Searcher.search`` over ``index``; the JSON of ``es-semantic search --json``."""
    state.check_index(index)
    check_caps(body, state.config)
    if body.rerank and state.reranker is None:
        raise HTTPProblem(400, "rerank needs a reranker: start the service with --rerank")
    with state.slot():
        result = await state.search(index, body.query, **body.model_dump(exclude={"query"}))
    for stage, ms in result.took_ms.items():
        state.metrics.stage(stage, ms / 1000)
    for warning in result.warnings:  # the response carries it too
        if warning.startswith(RERANK_HURTS) and index not in _warned:
            _warned.add(index)
            logger.warning("index %s: %s", index, warning)
    return {**result.to_json(), "encoder": state.encoder.config.ran()}


@router.get("/indices/{index}")
async def describe(index: str, state: State) -> dict[str, Any]:
    """What ``es-semantic info --json`` prints for ``index``, and ``encoder``: the backend and
    precision this service encodes its queries at (the index's are in its contract)."""
    state.check_index(index)
    info = await run_async(state.aes, index_info_steps(index))
    # sparse_model: whether this service can search the index's sparse leg (the playground's cue)
    contract = IndexContract.from_meta({META_KEY: info["contract"]}, index)  # the one parser
    sparse = await state.runs_sparse(index, contract.sparse)
    return {**info, "encoder": state.encoder.config.ran(), "sparse_model": sparse}


@router.get("/", include_in_schema=False)
async def playground(state: State) -> Response:
    """The playground: modes side by side, and eval reports as bar charts."""
    return HTMLResponse(state.playground_page())


@router.get("/playground/settings")
async def playground_settings(state: State) -> dict[str, Any]:
    """What the playground offers: indices, whether rerank is on, a loaded eval report."""
    return {
        "indices": await state.index_names(),
        "rerank": state.reranker is not None,
        "images": state.image_encoder is not None,  # image inputs and image -> image search
        "image_roots": bool(state.config.image_roots),  # thumbnails of image hits
        "model": state.encoder.config.model_name,
        "eval_report": state.config.eval_report is not None,
        "sparse": state.sparse_encoder is not None,  # serve --sparse-model: the sparse leg runs
    }


@router.get("/playground/eval-report")
async def playground_eval_report(state: State) -> dict[str, Any]:
    """The ``eval --json`` report given with ``--eval-report FILE``."""
    if state.config.eval_report is None:
        raise HTTPProblem(404, "no eval report: start the service with --eval-report FILE")
    return dict(state.config.eval_report)
