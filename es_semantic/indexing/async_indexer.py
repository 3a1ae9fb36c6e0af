"""AsyncIndexer: the async twin of Indexer (AsyncElasticsearch, async_streaming_bulk).

Encoding runs in a worker thread (``asyncio.to_thread``) so the event loop stays free; the bulk
consumer runs as a task fed by a queue of two batches, overlapping encoding and indexing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Iterable
from typing import Any

from elastic_transport import TransportError
from elasticsearch import ApiError, AsyncElasticsearch, BadRequestError, NotFoundError
from elasticsearch.helpers import async_streaming_bulk

from es_semantic.client import probe_cluster_async
from es_semantic.errors import ConfigError
from es_semantic.indexing import batch as steps
from es_semantic.indexing.actions import parse_bulk_item, unchanged_ids
from es_semantic.indexing.admin import write_index_of
from es_semantic.indexing.indexer import _IndexerOptions
from es_semantic.indexing.passages import encode_texts
from es_semantic.indexing.readers import FieldSpec
from es_semantic.schema.contract import IndexContract, contract_from_mapping_response
from es_semantic.schema.mapping import BUILTIN_ANALYZERS, analyzer_hint, index_body
from es_semantic.types import IndexReport


class AsyncIndexer(_IndexerOptions[AsyncElasticsearch]):
    """``await AsyncIndexer(aes, "docs", Encoder()).index(docs)`` -> IndexReport.

    ``docs`` may be a plain or an async iterable of dicts, Documents or ReadFailures.
    """

    async def ensure_index(self) -> IndexContract:
        """Create the index from the encoder's contract, or check the existing one's."""
        if self.contract is None:
            try:
                mapping = (await self.es.indices.get_mapping(index=self.index_name)).body
                existing = contract_from_mapping_response(dict(mapping), self.index_name)
                self.contract = self._accept_existing(existing)
                self.target = await self._write_index()
            except NotFoundError:
                self.contract = self._new_contract()
                self.created = await self._create(self.contract)
        return self.contract

    async def _write_index(self) -> str:
        """The concrete index behind the alias, if it is one (see ``resolve_write_index``)."""
        try:
            aliases = (await self.es.indices.get_alias(name=self.index_name)).body
        except NotFoundError:
            return self.index_name
        return write_index_of(self.index_name, aliases)

    async def field_spec(self) -> FieldSpec:
        """Which input fields are id, text and metadata for this index."""
        return self._spec(await self.ensure_index())

    async def _create(self, contract: IndexContract) -> bool:
        if contract.analyzer not in BUILTIN_ANALYZERS:
            try:
                await self.es.indices.analyze(analyzer=contract.analyzer, text="检索 search")
            except BadRequestError:
                raise ConfigError(analyzer_hint(contract.analyzer)) from None
        body = index_body(contract, cluster=await probe_cluster_async(self.es))
        try:
            await self.es.indices.create(
                index=self.index_name, settings=body["settings"], mappings=body["mappings"]
            )
        except BadRequestError as exc:
            if "resource_already_exists" in str(exc.error):
                return False
            raise ConfigError(
                f"the cluster refused to create {self.index_name!r}: {exc.message}"
            ) from None
        return True

    async def index(
        self, docs: Iterable[Any] | AsyncIterable[Any], *, total: int | None = None
    ) -> IndexReport:
        """Index ``docs``; every one ends up counted (indexed, skipped or failed).

        ``total``: how many there are, for the progress bar (taken from ``len(docs)`` when
        it has one)."""
        contract = await self.ensure_index()
        report, sink, bar = self._start(docs, total)
        accounting = steps.BulkAccounting(report, sink, bar)
        queue: asyncio.Queue[list[steps.Action] | None] = asyncio.Queue(2)
        consumer = asyncio.create_task(self._consume(queue, accounting))
        started = time.perf_counter()
        error: BaseException | None = None
        try:
            async for batch in _abatched(docs, self._spec(contract), self.batch_size):
                try:
                    actions = await self._encode_batch(batch, contract, report, sink, bar)
                except (ApiError, TransportError) as exc:
                    error = exc
                    break
                if actions and not await _put_or_fail(queue, actions, consumer):
                    accounting.fail(actions, "not sent: indexing stopped")
                    break
            if not consumer.done():
                await queue.put(None)
            await asyncio.wait([consumer])
            error = error or consumer.exception()
        finally:
            if not consumer.done():
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await consumer
            while not queue.empty():
                accounting.fail(queue.get_nowait(), "not sent: indexing was interrupted")
            if error is not None or consumer.cancelled():
                accounting.fail_unconfirmed("not confirmed by the server")
            sink.close()
            bar.close()
            report.seconds = time.perf_counter() - started
        if error is not None:
            raise self._stopped_error(error, report) from None
        if self.refresh:
            await self.es.indices.refresh(index=self.target)
        return report

    async def _encode_batch(
        self, batch: list[Any], contract: IndexContract, report: IndexReport, sink: Any, bar: Any
    ) -> list[steps.Action]:
        prepared = steps.prepare(batch, contract, report, sink, bar, self.seen_ids)
        try:
            unchanged = set() if self.created else await self._unchanged(prepared)
        except (ApiError, TransportError) as exc:  # the cluster went away between batches
            steps.fail_prepared(prepared, sink, exc)
            raise
        todo = steps.skip_unchanged(prepared, unchanged, report, bar)
        if not todo:
            return []
        t0 = time.perf_counter()
        texts = [p.doc.full_text() for p in todo]
        encoded = await asyncio.to_thread(encode_texts, self.encoder, texts, contract)
        report.encode_seconds += time.perf_counter() - t0
        return steps.build_actions(self.target, todo, encoded, contract, report)

    async def _unchanged(self, prepared: list[steps.Prepared]) -> set[str]:
        if not prepared:
            return set()
        wanted = {p.doc_id: p.digest for p in prepared}
        resp = await self.es.mget(
            index=self.target, ids=list(wanted), source_includes=["content_hash"]
        )
        return unchanged_ids(wanted, resp["docs"])

    async def _consume(
        self, queue: asyncio.Queue[list[steps.Action] | None], accounting: steps.BulkAccounting
    ) -> None:
        async def actions() -> Any:
            while (items := await queue.get()) is not None:
                for action, doc in items:
                    accounting.sent(action, doc)
                    yield action

        async for ok, item in async_streaming_bulk(
            self.es,
            actions(),
            raise_on_error=False,
            raise_on_exception=True,
            yield_ok=True,
            **self._bulk_options,
        ):
            accounting.record(parse_bulk_item(ok, item))


async def _abatched(docs: Iterable[Any] | AsyncIterable[Any], spec: FieldSpec, size: int) -> Any:
    if isinstance(docs, AsyncIterable):
        collected: list[Any] = []
        async for record in docs:
            collected.append(record)
            if len(collected) >= size:
                yield list(steps.as_records(collected, spec))
                collected = []
        if collected:
            yield list(steps.as_records(collected, spec))
        return
    for batch in steps.batched(steps.as_records(docs, spec), size):
        yield batch


async def _put_or_fail(queue: asyncio.Queue[Any], items: Any, consumer: asyncio.Task[None]) -> bool:
    """Put ``items``; False if the consumer died first (so the caller can account for them)."""
    put = asyncio.ensure_future(queue.put(items))
    done, _ = await asyncio.wait([put, consumer], return_when=asyncio.FIRST_COMPLETED)
    if put in done:
        return True
    put.cancel()
    return False
