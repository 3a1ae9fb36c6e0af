"""Image queries on an image index (#32): an image (a path, its bytes or a PIL image) -> the
CLIP image tower -> kNN, or hybrid with query text on the caption field, through the
searcher's one search path (its contract check, plan, fusion and paging).

Text queries on an image index need nothing from here: the CLIP ``ImageEncoder`` encodes them
with its text tower as any encoder does (``Searcher.search``)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from es_semantic.elastic.calls import Steps, Work
from es_semantic.errors import ConfigError, IndexContractError, InputError
from es_semantic.search.request import SearchRequest
from es_semantic.types import SearchResult

if TYPE_CHECKING:
    from es_semantic.schema.contract import IndexContract

IMAGE_QUERY = "(image)"  # the request's query text when an image alone is the query
IMAGE_MODES = ("knn", "hybrid")


def image_mode(mode: str | None, query: str | None) -> str:
    """The mode of an image query: kNN alone, or hybrid when query text is given too."""
    chosen = mode or ("hybrid" if query else "knn")
    if chosen not in IMAGE_MODES:
        raise InputError(
            f"an image query searches by kNN (or hybrid with query text), not mode={chosen!r}"
        )
    if chosen == "hybrid" and not query:
        raise InputError("hybrid with an image needs query text too (its keyword leg)")
    return chosen


def image_request(searcher: Any, query: str | None, mode: str | None, **options: Any) -> (
    SearchRequest):  # fmt: skip
    """An image query's request (``search_image``): kNN, or hybrid with query text."""
    chosen = image_mode(mode, query)
    return searcher._request(query or IMAGE_QUERY, mode=chosen, **options)  # type: ignore[no-any-return]


def query_image(image: Any) -> Any:
    """The query image as a PIL image; a bad one is an InputError naming it."""
    from es_semantic.encoding.images import ImageReadError, as_image

    try:
        return as_image(image)
    except ImageReadError as exc:
        raise InputError(f"query image {exc}") from None


def check_image_index(contract: IndexContract, index: str, encoder: Any) -> None:
    """An image query needs an image index and an encoder with an image tower."""
    if not contract.images:
        raise IndexContractError(
            f"index {index!r} holds text vectors ({contract.model_name}): an image query needs "
            "an image index, made with `es-semantic index INDEX PATH --format images` and a "
            "CLIP --model"
        )
    if not hasattr(encoder, "encode_images"):
        raise ConfigError(
            f"searching {index!r} by image needs its CLIP model as the encoder (ImageEncoder)"
        )


def image_encoder_of(searcher: Any, contract: IndexContract) -> Any:
    """The searcher's encoder that fits the contract and has an image tower: the one chosen
    for text queries may fit without one (the service's batched text interface of the same
    CLIP model)."""
    for encoder in (searcher.encoder, *searcher.encoders):
        if hasattr(encoder, "encode_images") and not contract.differences(
            encoder.config, for_indexing=False
        ):
            return encoder
    return searcher.encoder  # check_image_index names what is missing


def image_search_steps(searcher: Any, image: Any, request: SearchRequest) -> Steps[SearchResult]:
    """The image query's steps: the contract (checked against the encoder), the image
    vector (the model's work), then the searcher's own search steps with that vector."""
    picture = (yield Work(lambda: query_image(image))).body  # decoding: model work (a thread)
    contract = yield from searcher._contract_steps()
    encoder = image_encoder_of(searcher, contract)
    check_image_index(contract, searcher.index, encoder)
    t0 = time.perf_counter()
    work = Work(lambda: encoder.encode_images([picture])[0].tolist())
    vector: list[float] = (yield work).body
    encoded_ms = (time.perf_counter() - t0) * 1000
    # the vector is the old model's if the alias moved meanwhile: refused, never searched
    result: SearchResult = yield from searcher._steps(request, vector, contract)
    result.took_ms["encode"] = encoded_ms
    return result
