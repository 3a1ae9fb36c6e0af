"""What a searcher needs of an encoder (structural types: an ``Encoder`` fits them)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from es_semantic.config import EncoderConfig


class QueryEncoder(Protocol):
    """What a searcher needs of an encoder: its config (checked against the index contract)
    and query vectors. An ``Encoder``, or any object with the same two members."""

    @property
    def config(self) -> EncoderConfig: ...

    def encode_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...


@runtime_checkable
class AsyncQueryEncoder(Protocol):
    """A query encoder the async searcher awaits instead of running it in a thread (the
    service's, whose calls go through its dynamic batcher)."""

    async def aencode_queries(self, texts: Sequence[str]) -> npt.NDArray[np.float32]: ...
