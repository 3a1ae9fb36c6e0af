"""Tokenise the next batch while the current one runs the model (#35, a GPU that keeps up).

``window_batches`` plans without tokenising everything first: texts sorted by characters (longest
first), cut into windows of ``window`` texts; each window is tokenised, sorted by tokens and cut
by the token budget (``plan_batches``) only when it is reached. ``Prefetch`` runs such a generator
in one worker thread, one item ahead (a queue of one: bounded memory), in order; an exception
raised there is raised again in the caller, and closing it (or leaving its ``with``) stops and
joins the worker. Hugging Face fast tokenizers release the GIL while they tokenise.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any, Generic, TypeVar

import numpy as np
import numpy.typing as npt

from es_semantic.encoding.export import Feeds
from es_semantic.encoding.token_batches import plan_batches
from es_semantic.encoding.tokens import TokenizedTexts, tokenize

T = TypeVar("T")
_ITEM, _DONE, _ERROR = "item", "done", "error"
_WAKE_S = 0.1  # how often a worker waiting on a full queue looks whether it was stopped


def window_batches(
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    *,
    window: int,
    max_batch: int,
    max_tokens: int,
    feeds: Callable[[TokenizedTexts, list[int]], Feeds],
    truncated: npt.NDArray[np.bool_],
) -> Iterator[tuple[list[int], Feeds]]:
    """``(rows, feeds)`` per batch, ``rows`` being indices into ``texts``; ``truncated[i]`` is
    set once text ``i``'s window is tokenised. ``feeds(tokens, local_rows)`` pads a batch."""
    if window < 1:
        raise ValueError("window must be >= 1")
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    for start in range(0, len(order), window):
        indices = order[start : start + window]
        tokens = tokenize(tokenizer, [texts[i] for i in indices], max_length)
        truncated[indices] = tokens.truncated
        for local in plan_batches(tokens.lengths, max_batch=max_batch, max_tokens=max_tokens):
            yield [indices[j] for j in local], feeds(tokens, local)


class Prefetch(Generic[T]):
    """Iterate ``items`` produced one ahead by a worker thread (started at once).

    >>> with Prefetch(iter([1, 2, 3])) as items:
    ...     list(items)
    [1, 2, 3]
    """

    def __init__(self, items: Iterable[T], *, depth: int = 1) -> None:
        if depth < 1:
            raise ValueError("depth must be >= 1")
        self._source = iter(items)
        self._slots: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._finished = False
        self._worker = threading.Thread(target=self._produce, name="es-semantic-prefetch",
                                        daemon=True)  # fmt: skip
        self._worker.start()

    def __iter__(self) -> Prefetch[T]:
        return self

    def __next__(self) -> T:
        if self._finished:
            raise StopIteration
        kind, value = self._slots.get()
        if kind == _ITEM:
            return value  # type: ignore[no-any-return]
        self._finished = True
        self.close()
        if kind == _ERROR:
            raise value
        raise StopIteration

    def close(self) -> None:
        """Stop the worker (after the item it is making) and wait for it to end."""
        self._finished = True
        self._stop.set()
        while True:  # free a slot the worker may be waiting on
            try:
                self._slots.get_nowait()
            except queue.Empty:
                break
        if self._worker is not threading.current_thread():
            self._worker.join()

    def __enter__(self) -> Prefetch[T]:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    def _produce(self) -> None:
        try:
            for item in self._source:
                if not self._offer(_ITEM, item):
                    return
            self._offer(_DONE, None)
        except BaseException as exc:  # raised again in the caller, as it would be serially
            self._offer(_ERROR, exc)
        finally:
            close = getattr(self._source, "close", None)
            if close is not None:
                close()

    def _offer(self, kind: str, value: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._slots.put((kind, value), timeout=_WAKE_S)
                return True
            except queue.Full:
                continue
        return False
