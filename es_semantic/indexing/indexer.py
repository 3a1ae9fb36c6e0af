"""Indexer: records -> encode -> streaming_bulk (in a second thread) -> IndexReport.

Encoding of batch N+1 overlaps the bulk requests of batch N; memory is bounded by a queue of two
batches. Re-runs skip documents whose stored content hash is unchanged, without encoding them.
"""

from __future__ import annotations

import contextlib
import itertools
import queue
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch, helpers
from tqdm import tqdm

from es_semantic.encoding.encoder import Encoder
from es_semantic.errors import ConfigError, IndexingError
from es_semantic.indexing.actions import (
    BulkOutcome,
    content_hash,
    document_id,
    parse_bulk_item,
    to_action,
    unchanged_ids,
)
from es_semantic.indexing.admin import create_index, read_contract
from es_semantic.indexing.contract import IndexContract
from es_semantic.indexing.dead_letter import DeadLetterSink
from es_semantic.indexing.readers import FieldSpec, to_document
from es_semantic.types import Document, IndexReport, ReadFailure

_DONE = None


class Indexer:
    """Index documents into ``index`` with ``encoder``, creating the index when absent.

    >>> Indexer(es, "docs", Encoder()).index([{"id": "1", "text": "hello"}])  # doctest: +SKIP
    IndexReport(index='docs', indexed=1, ...)
    """

    def __init__(
        self,
        es: Elasticsearch,
        index: str,
        encoder: Encoder,
        *,
        id_field: str | None = None,
        text_fields: Sequence[str] | None = None,
        metadata_fields: Mapping[str, str] | Sequence[str] = (),
        similarity: str | None = None,
        index_options: str | None = None,
        analyzer: str | None = None,
        keep_vectors_in_source: bool | None = None,
        batch_size: int = 256,
        chunk_size: int = 500,
        max_chunk_bytes: int = 20 * 1024 * 1024,
        max_retries: int = 8,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        dead_letter: str | Path | None = None,
        progress: bool = False,
        refresh: bool = True,
    ) -> None:
        if batch_size < 1 or chunk_size < 1:
            raise ConfigError("batch_size and chunk_size must be >= 1")
        self.es, self.index_name, self.encoder = es, index, encoder
        meta = (
            dict(metadata_fields)
            if isinstance(metadata_fields, Mapping)
            else dict.fromkeys(metadata_fields, "keyword")
        )
        self._id_field = id_field
        self._text_fields = tuple(text_fields) if text_fields else None
        self._create_options: dict[str, Any] = {
            "text_fields": self._text_fields,
            "metadata_fields": meta,
            "similarity": similarity,
            "index_options": index_options,
            "analyzer": analyzer,
            "keep_vectors_in_source": keep_vectors_in_source,
        }
        self.batch_size = batch_size
        self._bulk_options = {
            "chunk_size": chunk_size,
            "max_chunk_bytes": max_chunk_bytes,
            "max_retries": max_retries,
            "initial_backoff": initial_backoff,
            "max_backoff": max_backoff,
        }
        self.dead_letter = dead_letter
        self.progress = progress
        self.refresh = refresh
        self.contract: IndexContract | None = None
        self.created = False

    def ensure_index(self) -> IndexContract:
        """Create the index from the encoder's contract, or check the existing one's."""
        if self.contract is not None:
            return self.contract
        if self.es.indices.exists(index=self.index_name):
            contract = read_contract(self.es, self.index_name)
            contract.check(self.encoder.config, self.index_name, for_indexing=True)
            if self._text_fields and self._text_fields != contract.text_fields:
                raise ConfigError(
                    f"index {self.index_name!r} has text fields {list(contract.text_fields)}; "
                    f"--text-field asked for {list(self._text_fields)}"
                )
        else:
            contract = IndexContract.from_encoder(self.encoder.config, **self._create_options)
            self.created = create_index(self.es, self.index_name, contract)
        self.contract = contract
        return contract

    def field_spec(self) -> FieldSpec:
        contract = self.ensure_index()
        return FieldSpec(self._id_field, contract.text_fields, tuple(contract.metadata_fields))

    def index(self, docs: Iterable[Any]) -> IndexReport:
        """Index ``docs`` (dicts, Documents or ReadFailures); every one ends up counted."""
        contract = self.ensure_index()
        spec = self.field_spec()
        report = IndexReport(self.index_name)
        sink = DeadLetterSink(report, self.dead_letter)
        records = _as_records(docs, spec)
        bar = tqdm(desc=f"indexing {self.index_name}", unit="doc", disable=not self.progress)
        started = time.perf_counter()
        pipe = _BulkPipeline(self.es, self._bulk_options, report, sink, bar)
        try:
            try:
                for batch in _batched(records, self.batch_size):
                    self._index_batch(batch, contract, report, sink, pipe, bar)
                pipe.close()
            except _PipelineStopped:
                pass  # pipe.error says why; accounted below
        finally:
            pipe.abort_and_account()
            sink.close()
            bar.close()
            report.seconds = time.perf_counter() - started
        if pipe.error is not None:
            raise IndexingError(
                f"indexing into {self.index_name!r} stopped: {_describe(pipe.error)}. "
                f"{report.indexed} documents were indexed; re-run the same command to resume "
                "(unchanged documents are skipped without encoding)."
            ) from None
        if self.refresh:
            self.es.indices.refresh(index=self.index_name)
        return report

    def _index_batch(
        self,
        batch: list[Document | ReadFailure],
        contract: IndexContract,
        report: IndexReport,
        sink: DeadLetterSink,
        pipe: _BulkPipeline,
        bar: tqdm[Any],
    ) -> None:
        if pipe.error is not None:
            for record in batch:
                origin, raw = (
                    (record.origin, record.raw)
                    if isinstance(record, ReadFailure)
                    else (record.origin, _doc_json(record))
                )
                sink.add(origin, "not sent: indexing stopped", raw)
            raise _PipelineStopped
        prepared: list[tuple[str, str, Document]] = []
        for record in batch:
            if isinstance(record, ReadFailure):
                sink.add(record.origin, record.reason, record.raw)
                bar.update(1)
                continue
            digest = content_hash(record, contract)
            prepared.append((document_id(record, digest), digest, record))
        ids = [doc_id for doc_id, _, _ in prepared]
        report.duplicates += len(ids) - len(set(ids))
        unchanged = set() if self.created else self._unchanged({i: d for i, d, _ in prepared})
        todo = [p for p in prepared if p[0] not in unchanged]
        report.skipped += len(prepared) - len(todo)
        bar.update(len(prepared) - len(todo))
        if not todo:
            return
        t0 = time.perf_counter()
        embedded = self.encoder.embed([doc.full_text() for _, _, doc in todo], kind="document")
        report.encode_seconds += time.perf_counter() - t0
        report.encoded += len(todo)
        report.truncated += embedded.truncated_count
        actions = [
            (to_action(self.index_name, doc_id, doc, digest, vector, contract), doc)
            for (doc_id, digest, doc), vector in zip(todo, embedded.vectors, strict=True)
        ]
        pipe.put(actions)

    def _unchanged(self, wanted: dict[str, str]) -> set[str]:
        if not wanted:
            return set()
        resp = self.es.mget(
            index=self.index_name, ids=list(wanted), source_includes=["content_hash"]
        )
        return unchanged_ids(wanted, resp["docs"])


def _as_records(docs: Iterable[Any], spec: FieldSpec) -> Iterator[Document | ReadFailure]:
    for number, record in enumerate(docs, start=1):
        if isinstance(record, Document | ReadFailure):
            yield record
        else:
            yield to_document(record, spec, f"input#{number}")


def _batched(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _describe(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {str(text).splitlines()[0][:300]}"


class _BulkPipeline:
    """``helpers.streaming_bulk`` in a thread, fed through a bounded queue of batches."""

    def __init__(
        self,
        es: Elasticsearch,
        options: Mapping[str, Any],
        report: IndexReport,
        sink: DeadLetterSink,
        bar: tqdm[Any],
    ) -> None:
        self.es, self.options, self.report, self.sink, self.bar = es, options, report, sink, bar
        self.error: BaseException | None = None
        self._queue: queue.Queue[list[tuple[dict[str, Any], Document]] | None] = queue.Queue(2)
        self._pending: dict[str, deque[Document]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="es-semantic-bulk", daemon=True)
        self._thread.start()

    def put(self, items: list[tuple[dict[str, Any], Document]] | None) -> None:
        while True:
            if self.error is not None:
                for _, doc in items or []:
                    self.sink.add(
                        doc.origin or str(doc.id), "not sent: indexing stopped", _doc_json(doc)
                    )
                raise _PipelineStopped
            try:
                self._queue.put(items, timeout=0.2)
                return
            except queue.Full:
                continue

    def close(self) -> None:
        with contextlib.suppress(_PipelineStopped):
            self.put(_DONE)
        self._thread.join()

    def abort_and_account(self) -> None:
        """After an error or interrupt: every queued or unconfirmed document is a failure."""
        if self._thread.is_alive():
            self.error = self.error or KeyboardInterrupt()
            self._drain("not sent: indexing was interrupted")
            with contextlib.suppress(queue.Full):
                self._queue.put_nowait(_DONE)  # wake the bulk thread; it flushes and stops
            self._thread.join(timeout=60)
        reason = f"not confirmed by the server ({_describe(self.error)})" if self.error else ""
        self._drain(reason)
        with self._lock:
            pending = [doc for docs in self._pending.values() for doc in docs]
            self._pending.clear()
        for doc in pending:
            self.sink.add(doc.origin or str(doc.id), reason or "not confirmed", _doc_json(doc))

    def _drain(self, reason: str = "") -> None:
        while True:
            try:
                items = self._queue.get_nowait()
            except queue.Empty:
                return
            for _, doc in items or []:
                self.sink.add(doc.origin or str(doc.id), reason or "not sent", _doc_json(doc))

    def _actions(self) -> Iterator[dict[str, Any]]:
        while self.error is None:
            items = self._queue.get()
            if items is _DONE:
                return
            for action, doc in items:
                with self._lock:
                    self._pending.setdefault(action["_id"], deque()).append(doc)
                yield action

    def _run(self) -> None:
        try:
            for ok, item in helpers.streaming_bulk(
                self.es, self._actions(), raise_on_error=False, raise_on_exception=True,
                yield_ok=True, **self.options,
            ):  # fmt: skip
                self._record(parse_bulk_item(ok, item))
        except BaseException as exc:  # the main thread re-raises it as IndexingError
            self.error = exc

    def _record(self, outcome: BulkOutcome) -> None:
        with self._lock:
            waiting = self._pending.get(outcome.doc_id)
            doc = waiting.popleft() if waiting else None
            if waiting is not None and not waiting:
                del self._pending[outcome.doc_id]
        if outcome.ok:
            self.report.indexed += 1
        else:
            origin = (doc.origin if doc else "") or outcome.doc_id
            self.sink.add(origin, outcome.reason, _doc_json(doc) if doc else outcome.doc_id)
        self.bar.update(1)


class _PipelineStopped(Exception):
    """Raised in the producer when the bulk thread has failed."""


def _doc_json(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, **dict(doc.texts), **dict(doc.metadata)}
