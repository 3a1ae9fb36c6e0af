"""AsyncIndexer: the async twin of Indexer (AsyncElasticsearch, async_streaming_bulk).

Reading one of the package's readers (a file reader parses, an image reader checks; any other
synchronous input when the caller opts in) and encoding run in worker threads
(``asyncio.to_thread``) so the event loop stays free; the bulk consumer runs as a task fed by a
queue of two batches, overlapping encoding and indexing.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterable, Iterable, Iterator
from typing import Any

from elasticsearch import AsyncElasticsearch
from elasticsearch.helpers import async_streaming_bulk

from es_semantic.elastic.calls import run_async
from es_semantic.indexing import batch as steps
from es_semantic.indexing.actions import parse_bulk_item
from es_semantic.indexing.indexer import STOPPING_ERRORS, _IndexerBase
from es_semantic.indexing.readers import FieldSpec, ThreadableReader
from es_semantic.schema.contract import IndexContract
from es_semantic.types import IndexReport

log = logging.getLogger(__name__)


class AsyncIndexer(_IndexerBase[AsyncElasticsearch]):
    """``await AsyncIndexer(aes, "docs", Encoder()).index(docs)`` -> IndexReport.

    ``docs`` may be a plain or an async iterable of dicts, Documents or ReadFailures.
    """

    async def ensure_index(self) -> IndexContract:
        """Create the index from the encoder's contract, or check the existing one's."""
        return await run_async(self.es, self.setup.steps())

    async def field_spec(self) -> FieldSpec:
        """Which input fields are id, text and metadata for this index."""
        await self.ensure_index()
        return self.setup.spec()

    async def index(
        self,
        docs: Iterable[Any] | AsyncIterable[Any],
        *,
        total: int | None = None,
    ) -> IndexReport:
        """Index ``docs``; every one ends up counted (indexed, skipped or failed).

        ``total``: how many there are, for the progress bar (taken from ``len(docs)`` when
        it has one). A run that stops raises :class:`IndexingError` (an interrupt or a
        cancellation :class:`IndexingInterrupted`) carrying the report.

        A :class:`~es_semantic.indexing.readers.ThreadableReader` (what the package's own
        readers return: :func:`~es_semantic.indexing.readers.read_path`, the image reader; wrap
        any iterator in one to opt in) is read batch by batch in a worker thread, so that
        parsing or waiting never blocks the event loop; any other synchronous iterable is read
        on the loop, since it may be tied to its thread (a sqlite3 cursor). A reader read in a
        thread must return each record promptly: a cancellation stops the read
        after the record in hand and waits for it (a thread cannot be stopped mid-record;
        each record it took ends a dead letter), and a further cancellation meanwhile is
        logged as a warning and takes effect when that record is in."""
        read_in_thread = isinstance(docs, ThreadableReader)
        contract = await self.ensure_index()
        run = self._start(docs, total)
        self._memory = None  # near-duplicates are looked for among this run's documents
        queue: asyncio.Queue[list[steps.Action] | None] = asyncio.Queue(2)
        consumer = asyncio.create_task(self._consume(queue, run))
        error: BaseException | None = None
        try:
            batches = _abatched(
                docs, self.setup.spec(), self.options.batch_size, run, read_in_thread
            )
            async for batch in batches:
                try:
                    actions = await self._batch_actions(batch, contract, run)
                except STOPPING_ERRORS as exc:
                    error = exc
                    break
                run.hand_over()
                if actions and not await _put_or_fail(queue, actions, consumer, run):
                    run.fail_actions(actions, "not sent: indexing stopped")
                    break
            await _finish(queue, consumer)  # never waits on a full queue a dead consumer left
            consumer_error = _outcome(consumer)  # read even when error is set: never left unread
            error = error or consumer_error
        except BaseException as exc:  # the encoder, a reader, an interrupt or a cancellation
            try:
                if isinstance(exc, Exception) and not consumer.done():
                    await _finish(queue, consumer)  # what the consumer holds: its real outcome
            finally:
                await self._abort(queue, consumer, run, stopped=True)
                _outcome(consumer)  # this run's error is exc; the consumer's is read, not left
            if isinstance(exc, asyncio.CancelledError):  # stays a cancellation, with the report
                exc.report = getattr(self._ended(KeyboardInterrupt(), run), "report", None)  # type: ignore[attr-defined]
                raise
            raise self._ended(exc, run) from exc
        await self._abort(queue, consumer, run, stopped=error is not None)
        if error is not None:
            raise self._ended(error, run) from None
        report = run.close()
        if self.options.refresh:
            try:
                await self.es.indices.refresh(index=self.target)
            except STOPPING_ERRORS as exc:  # every record is counted: say so with the error
                raise self._refresh_error(exc, report) from None
        return report

    async def _batch_actions(
        self, batch: list[Any], contract: IndexContract, run: steps.IndexRun
    ) -> list[steps.Action]:
        todo, stored = await run_async(self.es, self._batch_steps(batch, contract, run))
        todo, encoded = (
            await asyncio.to_thread(self._encode_parts, todo, contract, run) if todo else ([], [])
        )
        return await run_async(self.es, self._actions_steps(todo, encoded, stored, contract, run))

    @staticmethod
    async def _abort(
        queue: asyncio.Queue[list[steps.Action] | None],
        consumer: asyncio.Task[None],
        run: steps.IndexRun,
        *,
        stopped: bool,
    ) -> None:
        """Every queued or unconfirmed action of a stopped run becomes a dead letter (the
        accounting runs even when this task is cancelled again meanwhile)."""
        try:
            if not consumer.done():
                consumer.cancel()
                await asyncio.wait([consumer])  # raises only on this task's own cancellation
        finally:
            _account_queued(queue, run, stopped=stopped or consumer.cancelled())

    async def _consume(
        self, queue: asyncio.Queue[list[steps.Action] | None], run: steps.IndexRun
    ) -> None:
        async def actions() -> Any:
            while (items := await queue.get()) is not None:
                for action, doc in items:  # the whole share first: a failed request may
                    run.sent(action, doc)  # abandon this generator part-way through it
                for action, _ in items:
                    yield action

        async for ok, item in async_streaming_bulk(
            self.es,
            actions(),
            raise_on_error=False,
            raise_on_exception=True,
            yield_ok=True,
            **self.options.bulk_options(),
        ):
            run.record(parse_bulk_item(ok, item))


def _account_queued(
    queue: asyncio.Queue[list[steps.Action] | None], run: steps.IndexRun, *, stopped: bool
) -> None:
    while not queue.empty():
        run.fail_actions(queue.get_nowait(), "not sent: indexing was interrupted")
    if stopped:
        run.fail_unconfirmed("not confirmed by the server")


async def _abatched(
    docs: Iterable[Any] | AsyncIterable[Any],
    spec: FieldSpec,
    size: int,
    run: steps.IndexRun,
    in_thread: bool,
) -> Any:
    """Batches of records, each held by ``run`` from the moment it is read (a synchronous
    ``docs`` in a worker thread when ``in_thread``, else on the event loop)."""
    if isinstance(docs, AsyncIterable):
        collected: list[Any] = []
        number = 0
        async for raw in docs:
            number += 1
            collected += run.taking([steps.as_record(raw, spec, number)])
            if len(collected) >= size:
                yield collected
                collected = []
        if collected:
            yield collected
        return
    records = run.taking(steps.as_records(docs, spec))
    if not in_thread:  # it may be tied to this thread (a sqlite3 cursor): read here
        for batch in steps.batched(records, size):
            yield batch
        return
    stop = threading.Event()
    while batch := await _read_batch(records, size, stop):
        yield batch


async def _read_batch(records: Iterator[Any], size: int, stop: threading.Event) -> list[Any]:
    """The next batch of ``records``, read in a worker thread. Cancelled meanwhile, the read
    stops after the record in hand and is waited for (a thread cannot be stopped mid-record):
    each record it took is then in the run's hands, which the cancellation accounts for, as
    for any batch in hand (:meth:`IndexRun.fail_in_hand`)."""
    reading = asyncio.ensure_future(asyncio.to_thread(_take, records, size, stop))
    try:
        return await asyncio.shield(reading)
    except asyncio.CancelledError:
        stop.set()
        await _wait_for_read(reading)
        raise


async def _wait_for_read(reading: asyncio.Future[list[Any]]) -> None:
    """Wait for a cancelled read to return the record in hand. A further cancellation
    cannot cut the wait short without losing that record (read after the run is accounted,
    it would be counted nowhere): it is logged, and this task ends cancelled once it is in."""
    while not reading.done():
        try:
            await asyncio.wait([reading])
        except asyncio.CancelledError:
            log.warning(
                "cancelled again while a batch is being read: waiting for the reader to "
                "return the record in hand (a reader read in a thread must return promptly); "
                "the records it took become dead letters"
            )
    if not reading.cancelled():
        reading.exception()  # read, never reported as unretrieved: this run is cancelled


def _take(records: Iterator[Any], size: int, stop: threading.Event) -> list[Any]:
    """Up to ``size`` records (the worker thread's side); fewer once ``stop`` is set."""
    batch: list[Any] = []
    for record in records:
        batch.append(record)
        if len(batch) >= size or stop.is_set():  # never a record read past the batch
            break
    return batch


def _outcome(consumer: asyncio.Task[None]) -> BaseException | None:
    """The consumer's error, read so that asyncio never reports it as unretrieved."""
    if not consumer.done() or consumer.cancelled():
        return None
    return consumer.exception()


async def _finish(queue: asyncio.Queue[Any], consumer: asyncio.Task[None]) -> None:
    """Let the consumer send what it holds, then stop."""
    if await _put_or_fail(queue, None, consumer):
        await asyncio.wait([consumer])


async def _put_or_fail(
    queue: asyncio.Queue[Any],
    items: Any,
    consumer: asyncio.Task[None],
    run: steps.IndexRun | None = None,
) -> bool:
    """Put ``items``; False if the consumer died first (so the caller can account for them).
    Cancelled while waiting, the put is withdrawn and its actions are dead letters."""
    put = asyncio.ensure_future(queue.put(items))
    try:
        done, _ = await asyncio.wait([put, consumer], return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        if not put.done():  # not in the queue: it never will be
            put.cancel()
            if run is not None and items is not None:
                run.fail_actions(items, "not sent: indexing was interrupted")
        raise
    if put in done:
        return True
    put.cancel()
    return False
