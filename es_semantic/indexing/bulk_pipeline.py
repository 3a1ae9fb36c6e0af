"""The sync indexer's bulk side: ``helpers.streaming_bulk`` in sender threads.

Every action handed over ends in the run: indexed, or a dead letter (refused by the server,
never sent, or not confirmed when the run stopped). A run always ends: a sender waits on its
queue in short steps and leaves as soon as any sender has failed.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

from elasticsearch import Elasticsearch, helpers

from es_semantic.indexing import batch as steps
from es_semantic.indexing.actions import parse_bulk_item

_DONE = None
_WAIT = 0.2  # seconds a sender or the producer waits on a queue before looking at the error


def _queued(target: queue.Queue[list[steps.Action] | None], items: list[steps.Action]) -> bool:
    """Whether ``items`` made it into ``target`` (then draining the queue accounts for it)."""
    with target.mutex:
        return any(entry is items for entry in target.queue)


class PipelineStopped(Exception):
    """Raised in the producer when a sender has failed (``BulkPipeline.error`` says why)."""


class BulkPipeline:
    """``helpers.streaming_bulk`` in ``senders`` threads, each fed through its own bounded
    queue; a document id always goes to the same sender, so two writes of one id in different
    bulk requests are applied in input order. Within one request the helper retries only the
    items Elasticsearch rejected with 429, after the others: two writes of one id in the same
    request can then land out of order (the next run's content-hash check rewrites it)."""

    def __init__(
        self, es: Elasticsearch, options: Mapping[str, Any], run: steps.IndexRun, senders: int = 1
    ) -> None:
        self.es, self.options, self.run = es, options, run
        self.error: BaseException | None = None
        self._queues: list[queue.Queue[list[steps.Action] | None]] = [
            queue.Queue(2) for _ in range(senders)
        ]
        self._threads = [
            threading.Thread(target=self._run, args=(q,), name=f"es-semantic-bulk-{i}",
                             daemon=True)
            for i, q in enumerate(self._queues)
        ]  # fmt: skip
        for thread in self._threads:
            thread.start()

    def put(self, items: list[steps.Action]) -> None:
        """Hand a batch's actions to the senders, split by id."""
        shares: list[list[steps.Action]] = [[] for _ in self._queues]
        for item in items:
            shares[zlib.crc32(item[0]["_id"].encode()) % len(shares)].append(item)
        for n, share in enumerate(shares):
            if not share:
                continue
            try:
                self._put(self._queues[n], share)
            except PipelineStopped:
                for rest in shares[n + 1 :]:
                    self.run.fail_actions(rest, "not sent: indexing stopped")
                raise
            except BaseException:  # an interrupt while waiting for room: nothing goes unheld
                if not _queued(self._queues[n], share):
                    self.run.fail_actions(share, "not sent: indexing was interrupted")
                for rest in shares[n + 1 :]:
                    self.run.fail_actions(rest, "not sent: indexing was interrupted")
                raise

    def _put(self, target: queue.Queue[list[steps.Action] | None],
             items: list[steps.Action] | None) -> None:  # fmt: skip
        while True:
            if self.error is not None:
                self.run.fail_actions(items, "not sent: indexing stopped")
                raise PipelineStopped
            try:
                target.put(items, timeout=_WAIT)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        """No more actions: the senders send what they hold, then stop."""
        for target in self._queues:
            with contextlib.suppress(PipelineStopped):
                self._put(target, _DONE)
        for thread in self._threads:
            thread.join()

    def abort_and_account(self) -> None:
        """After an error or interrupt: every queued or unconfirmed document is a failure."""
        if any(thread.is_alive() for thread in self._threads):
            self.error = self.error or KeyboardInterrupt()
            self._drain("not sent: indexing was interrupted")
            for target in self._queues:
                with contextlib.suppress(queue.Full):
                    target.put_nowait(_DONE)  # wake the bulk thread; it flushes and stops
            for thread in self._threads:
                thread.join(timeout=60)
        self._drain("not sent")
        if self.error is not None:
            reason = f"not confirmed by the server ({steps.describe(self.error)})"
            self.run.fail_unconfirmed(reason)

    def drain(self, reason: str) -> None:
        """Dead-letter what still waits in the queues (never blocks)."""
        self._drain(reason)

    def _drain(self, reason: str) -> None:
        for source in self._queues:
            while True:
                try:
                    self.run.fail_actions(source.get_nowait(), reason)
                except queue.Empty:
                    break

    def _actions(self, source: queue.Queue[list[steps.Action] | None]) -> Iterator[Any]:
        while self.error is None:
            try:
                items = source.get(timeout=_WAIT)
            except queue.Empty:
                continue  # look at the error again: another sender may have failed
            if items is _DONE:
                return
            for action, doc in items:  # the whole share first: a failed request may
                self.run.sent(action, doc)  # abandon this generator part-way through it
            yield from (action for action, _ in items)

    def _run(self, source: queue.Queue[list[steps.Action] | None]) -> None:
        try:
            for ok, item in helpers.streaming_bulk(
                self.es,
                self._actions(source),
                raise_on_error=False,
                raise_on_exception=True,
                yield_ok=True,
                **self.options,
            ):
                self.run.record(parse_bulk_item(ok, item))
        except BaseException as exc:  # the producer raises it as IndexingError
            self.error = self.error or exc
