"""Dynamic batching: concurrent encode requests coalesced into one forward pass.

Each kind of text (queries, documents: they take different prefixes) has a bounded queue and a
worker. The worker takes the first waiting request and every other one already queued (those
that arrived during the previous forward pass), then, with ``max_wait_ms`` > 0, whatever arrives
within that window, while the batch stays under ``max_batch_tokens``; it encodes them in one
call in a thread (the event loop stays free) and hands every caller exactly its rows. A lone
request therefore waits for nothing (continuous batching); ``enabled=False`` encodes each
request alone. A full queue
refuses at once (:class:`Overloaded`: the service answers 429), never an unbounded backlog.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt

Kind = Literal["query", "document"]
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
        self._queues: dict[Kind, asyncio.Queue[_Job]] = {}
        self._workers: list[asyncio.Task[None]] = []

    def start(self) -> None:
        """Start the workers (inside the running event loop)."""
        for kind in ("query", "document"):
            self._queues[kind] = asyncio.Queue(self.max_queue)
            self._workers.append(asyncio.create_task(self._work(kind)))

    async def stop(self) -> None:
        """Finish what is queued, then stop the workers."""
        for queue in self._queues.values():
            await queue.join()
        for task in self._workers:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def depth(self) -> int:
        return sum(q.qsize() for q in self._queues.values())

    async def embed(self, texts: Sequence[str], kind: Kind) -> npt.NDArray[np.float32]:
        queue = self._queues[kind]
        job = _Job(list(texts), sum(self.count_tokens(t) for t in texts),
                   asyncio.get_running_loop().create_future())  # fmt: skip
        try:
            queue.put_nowait(job)
        except asyncio.QueueFull:
            raise Overloaded(f"{queue.qsize()} requests are waiting") from None
        return await job.future

    async def _work(self, kind: Kind) -> None:
        queue = self._queues[kind]
        while True:
            jobs = [await queue.get()]
            tokens = jobs[0].tokens
            deadline = time.perf_counter() + self.max_wait
            while self.enabled and tokens < self.max_batch_tokens:
                if not queue.empty():
                    job = queue.get_nowait()  # arrived while the last pass ran
                elif (left := deadline - time.perf_counter()) > 0:
                    try:
                        job = await asyncio.wait_for(queue.get(), timeout=left)
                    except asyncio.TimeoutError:
                        break
                else:
                    break
                jobs.append(job)
                tokens += job.tokens
            await self._run(kind, jobs)
            for _ in jobs:
                queue.task_done()

    async def _run(self, kind: Kind, jobs: list[_Job]) -> None:
        live = [j for j in jobs if not j.future.done()]  # a caller that left is skipped
        texts = [t for j in live for t in j.texts]
        if self.observe is not None:
            self.observe(len(texts), len(live))
        try:
            vectors = await asyncio.to_thread(self.encode, texts, kind) if texts else None
        except Exception as exc:  # every caller of the pass gets the error
            for job in live:
                if not job.future.done():
                    job.future.set_exception(exc)
            return
        start = 0
        for job in live:
            rows = vectors[start : start + len(job.texts)] if vectors is not None else None
            start += len(job.texts)
            if not job.future.done():
                job.future.set_result(rows if rows is not None else np.zeros((0, 0), np.float32))
