"""Indexer: records -> encode -> streaming_bulk (in a second thread) -> IndexReport.

Encoding of batch N+1 overlaps the bulk requests of batch N; memory is bounded by a queue of two
batches. Re-runs skip documents whose stored content hash is unchanged, without encoding them.
"""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from collections.abc import Iterable, Mapping, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, helpers
from tqdm import tqdm

from es_semantic.errors import ConfigError, IndexingError
from es_semantic.indexing import batch as steps
from es_semantic.indexing.actions import parse_bulk_item, unchanged_ids
from es_semantic.indexing.admin import create_index, read_contract, resolve_write_index
from es_semantic.indexing.dead_letter import DeadLetterSink
from es_semantic.indexing.passages import encode_texts
from es_semantic.indexing.readers import FieldSpec
from es_semantic.redact import client_secrets, redact
from es_semantic.schema.contract import IndexContract
from es_semantic.types import IndexReport

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder

_DONE = None


ClientT = TypeVar("ClientT")


class _IndexerOptions(Generic[ClientT]):
    """Options and contract logic shared by the sync and async indexers (one signature for
    both: ``es`` is an ``Elasticsearch`` or an ``AsyncElasticsearch``).

    ``metadata_fields``: names (keyword) or {name: type}; ``similarity``, ``index_options``,
    ``analyzer``, ``keep_vectors_in_source``, ``chunking``, ``chunk_tokens``,
    ``chunk_overlap``: the contract of a new index; ``batch_size``: documents encoded at a
    time; ``chunk_size``, ``max_chunk_bytes``, ``max_retries``, ``initial_backoff``,
    ``max_backoff``: bulk requests; ``dead_letter``: JSONL file for failed documents;
    ``refresh``: refresh the index after the run; ``track_ids``: keep every id read
    (``seen_ids``, for deleting what the input no longer has)."""

    def __init__(
        self,
        es: ClientT,
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
        chunking: str | None = None,
        chunk_tokens: int | None = None,
        chunk_overlap: int | None = None,
        batch_size: int = 256,
        chunk_size: int = 500,
        max_chunk_bytes: int = 20 * 1024 * 1024,
        max_retries: int = 8,
        initial_backoff: float = 1.0,
        max_backoff: float = 60.0,
        dead_letter: str | Path | None = None,
        progress: bool = False,
        refresh: bool = True,
        track_ids: bool = False,
    ) -> None:
        if batch_size < 1 or chunk_size < 1:
            raise ConfigError("batch_size and chunk_size must be >= 1")
        self.es = es
        self.index_name, self.encoder = index, encoder
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
            "chunking": chunking,
            "chunk_tokens": chunk_tokens,
            "chunk_overlap": chunk_overlap,
        }
        self.batch_size = batch_size
        self._bulk_options: dict[str, Any] = {
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
        self.target = index  # the concrete index written to (the alias's, once resolved)
        # ids of every document read (indexed, skipped or failed in bulk), for --delete-missing
        self.seen_ids: set[str] | None = set() if track_ids else None
        self.secrets = client_secrets(es)  # the client's credentials, kept out of every message

    def _new_contract(self) -> IndexContract:
        return IndexContract.from_encoder(self.encoder.config, **self._create_options)

    def _accept_existing(self, contract: IndexContract) -> IndexContract:
        contract.check(self.encoder.config, self.index_name, for_indexing=True)
        wanted = self._create_options.get("chunking")
        if wanted is not None and wanted != contract.chunking:
            raise ConfigError(
                f"index {self.index_name!r} has chunking {contract.chunking!r}, not {wanted!r}: "
                "index into a new index, or convert this one with `es-semantic migrate`"
            )
        if self._text_fields and self._text_fields != contract.text_fields:
            raise ConfigError(
                f"index {self.index_name!r} has text fields {list(contract.text_fields)}; "
                f"--text-field asked for {list(self._text_fields)}"
            )
        return contract

    def _spec(self, contract: IndexContract) -> FieldSpec:
        return FieldSpec(self._id_field, contract.text_fields, tuple(contract.metadata_fields))

    def _start(self, docs: Any, total: int | None) -> tuple[IndexReport, DeadLetterSink, tqdm[Any]]:
        """A run's report, dead-letter sink and progress bar (count, rate and, when the
        number of documents is known, time left)."""
        report = IndexReport(self.index_name)
        if total is None and isinstance(docs, Sized):
            total = len(docs)
        bar = tqdm(desc=f"indexing {self.index_name}", unit="doc", total=total,
                   disable=not self.progress, dynamic_ncols=True)  # fmt: skip
        return report, DeadLetterSink(report, self.dead_letter, self.secrets), bar

    def _stopped_error(self, error: BaseException, report: IndexReport) -> IndexingError:
        return IndexingError(
            redact(
                f"indexing into {self.index_name!r} stopped: {steps.describe(error)}. "
                f"{report.indexed} documents were indexed; re-run the same command to resume "
                "(unchanged documents are skipped without encoding).",
                self.secrets,
            )
        )


class Indexer(_IndexerOptions[Elasticsearch]):
    """Index documents into ``index`` with ``encoder``, creating the index when absent.

    >>> Indexer(es, "docs", Encoder()).index([{"id": "1", "text": "hello"}])  # doctest: +SKIP
    IndexReport(index='docs', indexed=1, ...)
    """

    def ensure_index(self) -> IndexContract:
        """Create the index from the encoder's contract, or check the existing one's."""
        if self.contract is None:
            if self.es.indices.exists(index=self.index_name):
                self.contract = self._accept_existing(read_contract(self.es, self.index_name))
                self.target = resolve_write_index(self.es, self.index_name)
            else:
                self.contract = self._new_contract()
                self.created = create_index(self.es, self.index_name, self.contract)
        return self.contract

    def field_spec(self) -> FieldSpec:
        """Which input fields are id, text and metadata for this index."""
        return self._spec(self.ensure_index())

    def index(self, docs: Iterable[Any], *, total: int | None = None) -> IndexReport:
        """Index ``docs`` (dicts, Documents or ReadFailures); every one ends up counted.

        ``total``: how many there are, for the progress bar (taken from ``len(docs)`` when
        it has one)."""
        contract = self.ensure_index()
        report, sink, bar = self._start(docs, total)
        records = steps.as_records(docs, self._spec(contract))
        started = time.perf_counter()
        pipe = _BulkPipeline(self.es, self._bulk_options, steps.BulkAccounting(report, sink, bar))
        try:
            try:
                for batch in steps.batched(records, self.batch_size):
                    self._index_batch(batch, contract, report, sink, bar, pipe)
                pipe.close()
            except _PipelineStopped:
                pass  # pipe.error says why; accounted below
        finally:
            pipe.abort_and_account()
            sink.close()
            bar.close()
            report.seconds = time.perf_counter() - started
        if pipe.error is not None:
            raise self._stopped_error(pipe.error, report) from None
        if self.refresh:
            self.es.indices.refresh(index=self.target)
        return report

    def _index_batch(
        self,
        batch: list[Any],
        contract: IndexContract,
        report: IndexReport,
        sink: DeadLetterSink,
        bar: tqdm[Any],
        pipe: _BulkPipeline,
    ) -> None:
        if pipe.error is not None:
            for record in batch:
                raw = getattr(record, "raw", None) or steps.doc_json(record)
                sink.add(record.origin, "not sent: indexing stopped", raw)
            raise _PipelineStopped
        prepared = steps.prepare(batch, contract, report, sink, bar, self.seen_ids)
        try:
            unchanged = set() if self.created else self._unchanged(prepared)
        except (ApiError, TransportError) as exc:  # the cluster went away between batches
            pipe.error = pipe.error or exc
            steps.fail_prepared(prepared, sink, exc)
            raise _PipelineStopped from None
        todo = steps.skip_unchanged(prepared, unchanged, report, bar)
        if todo:
            t0 = time.perf_counter()
            texts = [p.doc.full_text() for p in todo]
            encoded = encode_texts(self.encoder, texts, contract)
            report.encode_seconds += time.perf_counter() - t0
            pipe.put(steps.build_actions(self.target, todo, encoded, contract, report))

    def _unchanged(self, prepared: list[steps.Prepared]) -> set[str]:
        if not prepared:
            return set()
        wanted = {p.doc_id: p.digest for p in prepared}
        resp = self.es.mget(index=self.target, ids=list(wanted), source_includes=["content_hash"])
        return unchanged_ids(wanted, resp["docs"])


class _BulkPipeline:
    """``helpers.streaming_bulk`` in a thread, fed through a bounded queue of batches."""

    def __init__(
        self, es: Elasticsearch, options: Mapping[str, Any], accounting: steps.BulkAccounting
    ) -> None:
        self.es, self.options, self.accounting = es, options, accounting
        self.error: BaseException | None = None
        self._queue: queue.Queue[list[steps.Action] | None] = queue.Queue(2)
        self._thread = threading.Thread(target=self._run, name="es-semantic-bulk", daemon=True)
        self._thread.start()

    def put(self, items: list[steps.Action] | None) -> None:
        while True:
            if self.error is not None:
                self.accounting.fail(items, "not sent: indexing stopped")
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
        self._drain("not sent")
        if self.error is not None:
            reason = f"not confirmed by the server ({steps.describe(self.error)})"
            self.accounting.fail_unconfirmed(reason)

    def _drain(self, reason: str) -> None:
        while True:
            try:
                self.accounting.fail(self._queue.get_nowait(), reason)
            except queue.Empty:
                return

    def _actions(self) -> Any:
        while self.error is None:
            items = self._queue.get()
            if items is _DONE:
                return
            for action, doc in items:
                self.accounting.sent(action, doc)
                yield action

    def _run(self) -> None:
        try:
            for ok, item in helpers.streaming_bulk(
                self.es,
                self._actions(),
                raise_on_error=False,
                raise_on_exception=True,
                yield_ok=True,
                **self.options,
            ):
                self.accounting.record(parse_bulk_item(ok, item))
        except BaseException as exc:  # the main thread re-raises it as IndexingError
            self.error = exc


class _PipelineStopped(Exception):
    """Raised in the producer when the bulk thread has failed."""
