"""Images in the service (#32): ``{"image": ...}`` items in ``/v1/embeddings`` and ``/embed``,
image -> image search (``POST /indices/{index}/search/image``) and the playground's thumbnails
(``GET /playground/image?path=...``), read only from the folders given at start.

An image travels in JSON as base64 of its file bytes, or as a data URL
(``data:image/png;base64,...``); URLs are never fetched. Each is checked before it is decoded:
bytes (``max_image_bytes``), pixels from its header (``max_image_pixels``, under Pillow's
decompression-bomb limit), format (PNG, JPEG, GIF, WEBP, BMP, TIFF), count (``max_images``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import io
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import numpy.typing as npt
from fastapi import APIRouter, Depends
from fastapi.responses import Response
from pydantic import BaseModel

from es_semantic.errors import MissingDependencyError
from es_semantic.service.indices import SearchBody, check_caps
from es_semantic.service.settings import ServiceConfig
from es_semantic.service.state import HTTPProblem, ServiceState, check_inputs, service_state

if TYPE_CHECKING:
    from es_semantic.encoding.images import ImageEncoder

router = APIRouter()
State = Annotated[ServiceState, Depends(service_state)]
FORMATS = ("PNG", "JPEG", "GIF", "WEBP", "BMP", "TIFF")
EXTENSIONS = (".png", ".jpg", ".jpeg", ".gif", ".webp", ".bmp", ".tif", ".tiff")
DATA_URL = re.compile(r"data:image/[a-z0-9.+-]+;base64,", re.IGNORECASE)
THUMBNAIL_PX = 256
NO_MODEL = "image inputs need a CLIP model: start the service with --image-model DIR"


class TextItem(BaseModel):
    """A text to encode with the CLIP model's text tower (beside images, one space)."""

    model_config = {"extra": "forbid"}
    text: str


class ImageItem(BaseModel):
    """An image: base64 of its file bytes, or a ``data:image/...;base64,`` URL."""

    model_config = {"extra": "forbid"}
    image: str


Item = str | TextItem | ImageItem


def has_items(inputs: Sequence[Item]) -> bool:
    """Whether a request's inputs are ``{"text"}``/``{"image"}`` items (for the CLIP model);
    a 400 when they mix with plain strings (which go to the text model)."""
    items = sum(not isinstance(x, str) for x in inputs)
    if items and items != len(inputs):
        raise HTTPProblem(400, 'input mixes plain strings with {"text"}/{"image"} items: send '
                          'each text as {"text": ...} to embed it beside images')  # fmt: skip
    return items > 0


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError("pillow", "images", "images in the service") from exc
    return Image


def image_bytes(data: str, name: str, config: ServiceConfig) -> bytes:
    """The file bytes of a base64 or data-URL image, or a one-line 400/413 naming it."""
    if data[:8].lower().startswith(("http://", "https:/", "file:")):
        raise HTTPProblem(400, f"{name} is a URL; URLs are not fetched: send the image's bytes "
                          "as base64 or a data:image/...;base64, URL")  # fmt: skip
    found = DATA_URL.match(data[:100])
    payload = data[found.end() :] if found else data
    if "\n" in payload or " " in payload:  # `base64 FILE` wraps its lines at 76 characters
        payload = "".join(payload.split())
    if len(payload) * 3 // 4 > config.max_image_bytes:
        raise HTTPProblem(413, f"{name} is about {len(payload) * 3 // 4} bytes; the limit is "
                          f"{config.max_image_bytes} (serve --max-image-bytes)")  # fmt: skip
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise HTTPProblem(400, f"{name} is neither base64 nor a data:image/...;base64, URL: "
                          "send the image file's bytes base64-encoded") from None  # fmt: skip
    if not raw:
        raise HTTPProblem(400, f"{name} is empty (0 bytes)")
    return raw


def decode_image(raw: bytes, name: str, config: ServiceConfig) -> Any:
    """An RGB PIL image from file bytes: format and pixel count checked from the header before
    the pixels are decoded; a one-line 400/413 naming ``name`` otherwise."""
    image_mod = _pil()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", image_mod.DecompressionBombWarning)
            with image_mod.open(io.BytesIO(raw), formats=FORMATS) as opened:
                width, height = opened.size
                if image_mod.MAX_IMAGE_PIXELS and width * height > image_mod.MAX_IMAGE_PIXELS:
                    raise image_mod.DecompressionBombError(name)  # the filter: process-wide
                if width * height > config.max_image_pixels:
                    raise HTTPProblem(413, f"{name} is {width}x{height} = {width * height} "
                                      f"pixels; the limit is {config.max_image_pixels} "
                                      "(serve --max-image-pixels)")  # fmt: skip
                opened.load()
                return opened.convert("RGB")
    except (image_mod.DecompressionBombWarning, image_mod.DecompressionBombError):
        raise HTTPProblem(413, f"{name} is refused as a decompression bomb (over Pillow's "
                          f"{image_mod.MAX_IMAGE_PIXELS} pixels)") from None  # fmt: skip
    except image_mod.UnidentifiedImageError:
        raise HTTPProblem(400, f"{name} is not an image in a supported format "
                          f"({', '.join(FORMATS)})") from None  # fmt: skip
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated, corrupt
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise HTTPProblem(400, f"{name} is truncated or corrupt ({reason})") from None


def image_encoder(state: ServiceState) -> ImageEncoder:
    encoder: ImageEncoder | None = state.image_encoder
    if encoder is None:
        raise HTTPProblem(400, NO_MODEL)
    return encoder


def encode_items(
    encoder: ImageEncoder, items: Sequence[Item], config: ServiceConfig
) -> npt.NDArray[np.float32]:
    """Texts and images (decoded here, within the caps) -> CLIP vectors, in input order."""
    if len(items) > config.max_inputs:
        raise HTTPProblem(413, f"{len(items)} inputs; the limit is {config.max_inputs} a request")
    texts = [(i, x.text) for i, x in enumerate(items) if isinstance(x, TextItem)]
    shown = [(i, x.image) for i, x in enumerate(items) if isinstance(x, ImageItem)]
    if len(shown) > config.max_images:
        raise HTTPProblem(413, f"{len(shown)} images; the limit is {config.max_images} a "
                          "request (serve --max-images)")  # fmt: skip
    check_inputs([t for _, t in texts], config)
    blobs = []
    for i, data in shown:  # each checked whole (caps, format, pixels) and let go: a request
        raw = image_bytes(data, f"input #{i}", config)  # holds one decoded image at a time
        decode_image(raw, f"input #{i}", config)
        blobs.append(raw)
    out = np.zeros((len(items), encoder.dim), dtype=np.float32)
    if texts:
        out[[i for i, _ in texts]] = encoder.encode_texts([t for _, t in texts])
    if blobs:  # decoded again one at a time, as the model takes them
        names = [f"input #{i}" for i, _ in shown]
        out[[i for i, _ in shown]] = encoder.encode_image_bytes(blobs, names)
    return out


async def embed_items(state: ServiceState, items: Sequence[Item]) -> npt.NDArray[np.float32]:
    """``encode_items`` off the event loop, as one search-or-rerank slot."""
    encoder = image_encoder(state)
    with state.slot():
        return await asyncio.to_thread(encode_items, encoder, items, state.config)


class ImageSearchBody(BaseModel):
    """Image -> image search (``Searcher.search_image``): the image, as base64 or a data URL,
    and its options; with ``query`` text, hybrid with the caption field."""

    model_config = {"extra": "forbid"}
    image: str
    query: str | None = None
    mode: Literal["knn", "hybrid"] | None = None
    k: int = 10
    offset: int = 0
    fusion: Literal["auto", "server", "rrf", "weighted", "linear"] = "auto"
    alpha: float = 0.5
    window: int = 100
    num_candidates: int | None = None
    filters: dict[str, Any] | None = None
    source: list[str] | None = None
    exact: bool = False


def _decoded(data: str, config: ServiceConfig) -> Any:
    return decode_image(image_bytes(data, "image", config), "image", config)


@router.post("/indices/{index}/search/image")
async def search_image(index: str, body: ImageSearchBody, state: State) -> dict[str, Any]:
    """Image -> image: the images of ``index`` nearest the one sent (kNN, or hybrid with
    ``query`` on the caption field), as ``search --json``."""
    searcher = state.searcher(index)
    image_encoder(state)  # a 400 naming --image-model without one
    caps = body.model_dump(include={"k", "offset", "window", "num_candidates", "filters",
                                    "source"})  # fmt: skip
    check_caps(SearchBody(query=body.query or "", **caps), state.config)
    with state.slot():
        picture = await asyncio.to_thread(_decoded, body.image, state.config)
        # the one image path of the library: the contract (an image index, checked against
        # the CLIP model), the vector, the searcher's steps; a PIL image, never a path
        result = await searcher.search_image(picture, **body.model_dump(exclude={"image"}))
    state.keep(index, searcher)
    for stage, ms in result.took_ms.items():
        state.metrics.stage(stage, ms / 1000)
    return result.to_json()


def confined(path: str, roots: Sequence[str]) -> Path | None:
    """The image file ``path`` names, resolved (symlinks followed) and inside one of ``roots``;
    None for anything else: outside them, through ``..`` or a symlink, missing, not a file,
    not an image extension. A relative path is taken under each root."""
    if not path or "\x00" in path or not roots:
        return None
    for root in roots:
        base = Path(root).resolve()
        try:
            real = (base / path).resolve(strict=True)  # an absolute path replaces base
        except (OSError, RuntimeError, ValueError):
            continue
        if real.is_relative_to(base) and real.is_file() and real.suffix.lower() in EXTENSIONS:
            return real
    return None


def thumbnail(file: Path, config: ServiceConfig) -> bytes:
    """A JPEG at most THUMBNAIL_PX a side, made by Pillow (the file's bytes are never sent)."""
    try:  # the file may go, or become unreadable, after confined() saw it
        if file.stat().st_size > config.max_image_bytes:
            raise HTTPProblem(413, f"the image is over {config.max_image_bytes} bytes "
                              "(serve --max-image-bytes)")  # fmt: skip
        raw = file.read_bytes()
    except OSError:
        raise HTTPProblem(404, "no such image under the folders this service serves") from None
    image = decode_image(raw, "the image", config)
    image.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=85)
    return out.getvalue()


@router.get("/playground/image")
async def playground_image(path: str, state: State) -> Response:
    """A thumbnail of an image hit, only from the folders given with ``serve --image-root``."""
    if not state.config.image_roots:
        raise HTTPProblem(404, "no image folders are served: start the service with "
                          "--image-root DIR")  # fmt: skip
    file = confined(path, state.config.image_roots)
    if file is None:
        raise HTTPProblem(404, "no such image under the folders this service serves")
    data = await asyncio.to_thread(thumbnail, file, state.config)
    return Response(data, media_type="image/jpeg",
                    headers={"Cache-Control": "private, max-age=300",
                             "X-Content-Type-Options": "nosniff"})  # fmt: skip
