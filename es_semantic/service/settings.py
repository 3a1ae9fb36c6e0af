"""The service's limits and security settings (no web framework imported: the ``serve``
command reads its option defaults from here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ServiceConfig:
    """Limits and security of the service."""

    indices: tuple[str, ...] = ()  # the indices clients may search; () = any
    api_keys: tuple[str, ...] = ()  # when set, every route but the open ones needs one
    max_inputs: int = 512
    max_chars: int = 20_000  # per input text, and the /rerank and search query
    max_batch_tokens: int = 16_384
    max_wait_ms: float = 0.0
    max_queue: int = 512
    batching: bool = True
    cors_origins: tuple[str, ...] = ()
    eval_report: Mapping[str, Any] | None = None  # an `eval --json` report for the playground
    max_body_bytes: int = 16 << 20
    max_body_seconds: int = 30  # a body not in by then: 408 (a stalled client frees its slot)
    max_k: int = 1_000  # caps k and offset + k
    max_window: int = 1_000
    max_num_candidates: int = 10_000
    max_rerank_top: int = 1_000  # as the CLI's --rerank-top
    max_filter_values: int = 1_024  # values across a search's filters (a terms list each)
    max_concurrent: int = 64  # searches and reranks in flight; beyond: 429
    # connections and requests uvicorn serves at once per worker; beyond: 503. With the body
    # limit it bounds what request bodies can hold: max_connections x max_body_bytes
    max_connections: int = 256
    max_searchers: int = 256  # cached searchers (one per index name that answered)
    # images (#32): the folders the playground's thumbnails may come from (none: no thumbnails),
    # and the caps on images sent in a request (count, bytes of each, pixels of each)
    image_roots: tuple[str, ...] = ()
    max_images: int = 16
    max_image_bytes: int = 10 << 20
    max_image_pixels: int = 25_000_000
