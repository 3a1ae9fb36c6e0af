"""Dynamic batching: concurrent encode requests coalesced into one forward pass.

One encode thread runs the forward passes back to back; the event loop only queues requests
and hands results back, so it is never on the path from one pass to the next. Each pass takes
the oldest waiting request and every other one of its kind (queries and documents take
different prefixes) already queued (those that arrived during the previous pass), then, with
``max_wait_ms`` > 0, whatever arrives within that window, while the batch stays under
``max_batch_tokens``. Tokenising happens in the encode thread too (the loop stays free), and
every caller gets exactly its rows; a failure fails the callers of that pass only, and a
caller that left (cancelled) is skipped without touching the others. A lone request
therefore waits for nothing (continuous batching: the window closes as soon as the encoder is
idle); ``enabled=False`` encodes each request alone. A full queue refuses at once
(:class:`Overloaded`: the service answers 429), never an unbounded backlog.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Kind = Literal["query", "document"]
KINDS: tuple[Kind, ...] = ("query", "document")
Encode = Callable[[list[str], Kind], npt.NDArray[np.float32]]
Observe = Callable[[int, int], None]  # (texts in the pass, requests in the pass)


class Overloaded(Exception):
    """The queue is full: try again later."""


@dataclass
class _Job:
    texts: list[str]
    tokens: int
    future: asyncio.Future[npt.NDArray[np.float32]]
    queued: float = field(default_factory=time.perf_counter)


class DynamicBatcher:
    """``await batcher.embed(texts, "query")`` -> float32 (len(texts), dim)."""

    def __init__(
        self,
        encode: Encode,
        *,
        max_batch_tokens: int = 16_384,
        max_wait_ms: float = 0.0,
        max_queue: int = 512,
        count_tokens: Callable[[str], int] = lambda text: len(text) // 4 + 2,
        observe: Observe | None = None,
        enabled: bool = True,
    ) -> None:
        self.encode, self.count_tokens, self.observe = encode, count_tokens, observe
        self.max_batch_tokens, self.max_queue = max_batch_tokens, max_queue
        self.max_wait = max_wait_ms / 1000
        self.enabled = enabled
        self._waiting: dict[Kind, deque[_Job]] = {kind: deque() for kind in KINDS}
        self._ready = threading.Condition()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def start(self) -> None:
        """Start the encode thread (inside the running event loop, which gets the results)."""
        self._loop = asyncio.get_running_loop()
        self._stopping = False
        self._thread = threading.Thread(target=self._work, name="es-semantic-encode", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Finish what is queued, then stop the encode thread."""
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join)
            self._thread = None
        await asyncio.sleep(0)  # the last pass's results, posted to the loop, are handed out

    def depth(self) -> int:
        """Requests waiting for a forward pass."""
        return sum(len(q) for q in self._waiting.values())

    async def embed(self, texts: Sequence[str], kind: Kind) -> npt.NDArray[np.float32]:
        job = _Job(list(texts), sum(self.count_tokens(t) for t in texts),
                   asyncio.get_running_loop().create_future())  # fmt: skip
        with self._ready:
            waiting = self.depth()
            if waiting >= self.max_queue:
                raise Overloaded(f"{waiting} requests are waiting")
            self._waiting[kind].append(job)
            self._ready.notify()
        return await job.future

    def _work(self) -> None:
        """The encode thread: one pass after another while requests wait."""
        while (taken := self._take()) is not None:
            self._run(*taken)

    def _take(self) -> tuple[Kind, list[_Job]] | None:
        """The next pass: the oldest request's kind, with what waits of that kind (and, with a
        window, what arrives within it) up to the token budget; None once stopped and empty."""
        with self._ready:
            while not self.depth():
                if self._stopping:
                    return None
                self._ready.wait()
            kind = min((k for k in KINDS if self._waiting[k]),
                       key=lambda k: self._waiting[k][0].queued)  # fmt: skip
            queue = self._waiting[kind]
            jobs = [queue.popleft()]
            tokens = jobs[0].tokens
            deadline = time.perf_counter() + self.max_wait
            while self.enabled and tokens < self.max_batch_tokens:
                if queue:
                    jobs.append(queue.popleft())
                    tokens += jobs[-1].tokens
                elif (left := deadline - time.perf_counter()) > 0 and not self._stopping:
                    self._ready.wait(left)
                else:
                    break
            return kind, jobs

    def _run(self, kind: Kind, jobs: list[_Job]) -> None:
        live = [j for j in jobs if not j.future.done()]  # a caller that left is skipped
        texts = [t for j in live for t in j.texts]
        outcome: npt.NDArray[np.float32] | BaseException = np.zeros((0, 0), np.float32)
        if texts:
            if self.observe is not None:
                self.observe(len(texts), len(live))
            try:
                outcome = self.encode(texts, kind)
            except Exception as exc:  # every caller of this pass gets the error, no one else
                outcome = exc
        if live and self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(_hand_out, live, outcome)


def _hand_out(jobs: list[_Job], outcome: npt.NDArray[np.float32] | BaseException) -> None:
    """On the event loop: each caller its own rows (or the pass's error)."""
    start = 0
    for job in jobs:
        end = start + len(job.texts)
        if job.future.done():  # left while its pass ran
            pass
        elif isinstance(outcome, BaseException):
            job.future.set_exception(outcome)
        else:
            job.future.set_result(outcome[start:end])
        start = end
