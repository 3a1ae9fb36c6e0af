"""AsyncIndexer reads the package's own readers (JSONL, CSV, Parquet, images), and any other
synchronous input only when asked (wrapped in ``ThreadableReader``), in a worker thread: a slow or
blocking reader leaves the event loop free, an input tied to its thread (a sqlite3 cursor) is
read where it was made, and a cancellation that lands while a batch is being read keeps every
record read accounted for (indexed, skipped or failed exactly once)."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import time
import uuid
from typing import Any

from elasticsearch import AsyncElasticsearch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from es_semantic.indexing.async_indexer import AsyncIndexer
from es_semantic.indexing.readers import ThreadableReader
from tests.integration.test_indexing import corpus


def _wait_until(condition: Any, seconds: float) -> bool:
    """Poll ``condition`` from the reader's thread (at most ``seconds``): whether it held."""
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.002)
    return True


def test_a_blocking_reader_leaves_the_event_loop_free(es_server: Any, index_name: str,
                                                      tiny: Any) -> None:  # fmt: skip
    """Each record's read waits (up to a second) for a coroutine beside the run to tick: read
    on the event loop, the ticker never ticks while a record is being read. A
    ``ThreadableReader`` (what the package's readers return) is read in a thread."""
    ticks, ticked = {"n": 0}, []

    def blocking_reader() -> Any:
        for doc in corpus(6):
            before = ticks["n"]
            ticked.append(_wait_until(lambda before=before: ticks["n"] != before, 1.0))
            yield doc

    async def ticker() -> None:
        while True:
            ticks["n"] += 1
            await asyncio.sleep(0.002)

    async def go() -> Any:
        aes = AsyncElasticsearch(es_server.config.url)
        ticking = asyncio.create_task(ticker())
        try:
            indexer = AsyncIndexer(aes, index_name, tiny, batch_size=3, chunking="none")
            return await indexer.index(ThreadableReader(blocking_reader()))
        finally:
            ticking.cancel()
            await aes.close()

    report = asyncio.run(go())
    assert ticked == [True] * 6, "the event loop was blocked while the reader read"
    assert (report.indexed, report.failed) == (6, 0)


def test_a_generator_over_a_sqlite_cursor_indexes_every_row(es_server: Any, index_name: str,
                                                            tiny: Any) -> None:  # fmt: skip
    """A sqlite3 cursor can only be used in the thread that made it: a generator over one is
    read on the event loop (not opted in), and every row is indexed."""
    rows = corpus(7)

    def from_sqlite(db: sqlite3.Connection) -> Any:
        for doc_id, title, text in db.execute("SELECT id, title, text FROM docs ORDER BY id"):
            yield {"id": doc_id, "title": title, "text": text}

    async def go() -> Any:
        db = sqlite3.connect(":memory:")
        db.execute("CREATE TABLE docs (id TEXT, title TEXT, text TEXT)")
        db.executemany("INSERT INTO docs VALUES (?, ?, ?)",
                       [(r["id"], r["title"], r["text"]) for r in rows])  # fmt: skip
        aes = AsyncElasticsearch(es_server.config.url)
        try:
            indexer = AsyncIndexer(aes, index_name, tiny, batch_size=3, chunking="none")
            return await indexer.index(from_sqlite(db))
        finally:
            await aes.close()
            db.close()

    report = asyncio.run(go())
    assert (report.indexed, report.skipped, report.failed) == (7, 0, 0)


@st.composite
def cancellations(draw: st.DrawFn) -> dict[str, int]:
    total = draw(st.integers(1, 24))
    return {"total": total, "batch_size": draw(st.integers(1, 10)),
            "cancel_at": draw(st.integers(1, total))}  # fmt: skip


@settings(
    max_examples=12,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(case=cancellations())
def test_a_cancellation_while_a_batch_is_read_keeps_every_record_accounted(
    es: Any, es_server: Any, tiny: Any, tmp_path: Any, case: dict[str, int]
) -> None:  # fmt: skip
    """The task is cancelled from inside the read of record ``cancel_at`` (the reader waits
    for the cancellation to land, then goes on reading, slowly): the run ends as a
    cancellation carrying its report, and every record the reader gave is counted once, in
    the dead-letter file or the index."""
    index = f"test-cancel-read-{uuid.uuid4().hex[:12]}"
    dead = tmp_path / f"{index}.dead.jsonl"
    read, landed = {"n": 0}, []
    holder: dict[str, Any] = {}

    def reader() -> Any:
        for doc in corpus(case["total"]):
            read["n"] += 1
            if read["n"] == case["cancel_at"]:
                task = holder["task"]
                holder["loop"].call_soon_threadsafe(task.cancel)
                landed.append(_wait_until(lambda task=task: task.cancelling() > 0, 1.0))
            time.sleep(0.003)
            yield doc

    async def go() -> Any:
        aes = AsyncElasticsearch(es_server.config.url)
        indexer = AsyncIndexer(aes, index, tiny, batch_size=case["batch_size"],
                               chunking="none", dead_letter=dead)  # fmt: skip
        await indexer.ensure_index()
        holder["loop"] = asyncio.get_running_loop()
        holder["task"] = asyncio.create_task(indexer.index(ThreadableReader(reader())))
        try:
            await holder["task"]
        except asyncio.CancelledError as exc:
            return exc
        finally:
            await aes.close()
        return None

    try:
        cancelled = asyncio.run(go())
        assert landed == [True], "the cancellation could not land while the batch was read"
        assert isinstance(cancelled, asyncio.CancelledError)
        report = cancelled.report  # type: ignore[attr-defined]
        assert report.indexed + report.skipped + report.failed == read["n"]
        letters = [json.loads(x) for x in dead.read_text().splitlines()] if dead.exists() else []
        assert len(letters) == report.failed
        es.indices.refresh(index=index)
        assert es.count(index=index)["count"] == report.indexed
    finally:
        es.options(ignore_status=404).indices.delete(index=index)


def test_a_second_cancellation_while_a_batch_is_read_is_not_swallowed_silently(
    es: Any, es_server: Any, tiny: Any, tmp_path: Any, caplog: Any
) -> None:  # fmt: skip
    """Cancelled twice from inside a read (opted in): the second cancellation is logged as a
    warning while the read is waited for, the run still ends cancelled with its report, and
    every record the reader gave is counted once."""
    index = f"test-cancel-twice-{uuid.uuid4().hex[:12]}"
    dead = tmp_path / f"{index}.dead.jsonl"
    read, landed = {"n": 0}, []
    holder: dict[str, Any] = {}

    def warned() -> bool:
        return any("cancelled again" in r.getMessage() for r in caplog.records)

    def reader() -> Any:
        for doc in corpus(9):
            read["n"] += 1
            if read["n"] == 5:
                task = holder["task"]
                for times in (1, 2):
                    holder["loop"].call_soon_threadsafe(task.cancel)
                    landed.append(
                        _wait_until(lambda t=times, task=task: task.cancelling() >= t, 1.0)
                    )
                landed.append(_wait_until(warned, 1.0))
            yield doc

    async def go() -> Any:
        aes = AsyncElasticsearch(es_server.config.url)
        indexer = AsyncIndexer(aes, index, tiny, batch_size=3, chunking="none", dead_letter=dead)
        await indexer.ensure_index()
        holder["loop"] = asyncio.get_running_loop()
        holder["task"] = asyncio.create_task(indexer.index(ThreadableReader(reader())))
        try:
            await holder["task"]
        except asyncio.CancelledError as exc:
            return exc
        finally:
            await aes.close()
        return None

    try:
        with caplog.at_level("WARNING", logger="es_semantic.indexing.async_indexer"):
            cancelled = asyncio.run(go())
        assert landed == [True, True, True], "the second cancellation was swallowed silently"
        assert isinstance(cancelled, asyncio.CancelledError)
        report = cancelled.report  # type: ignore[attr-defined]
        assert read["n"] == 5  # the read stopped after the record in hand
        assert report.indexed + report.skipped + report.failed == read["n"]
        letters = dead.read_text().splitlines() if dead.exists() else []
        assert len(letters) == report.failed
        es.indices.refresh(index=index)
        assert es.count(index=index)["count"] == report.indexed
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
