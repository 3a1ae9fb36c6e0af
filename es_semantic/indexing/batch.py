"""No network: turn a batch of records into bulk actions, and account for every bulk outcome.

Shared by the sync :class:`~es_semantic.indexing.indexer.Indexer` and the
:class:`~es_semantic.indexing.async_indexer.AsyncIndexer`.
"""

from __future__ import annotations

import itertools
import threading
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from tqdm import tqdm

from es_semantic.indexing.actions import (
    BulkOutcome,
    EncodedDoc,
    content_hash,
    document_id,
    to_action,
)
from es_semantic.indexing.dead_letter import DeadLetterSink
from es_semantic.indexing.readers import FieldSpec, to_document
from es_semantic.schema.contract import IndexContract
from es_semantic.types import Document, IndexReport, ReadFailure

Action = tuple[dict[str, Any], Document]


@dataclass(frozen=True)
class Prepared:
    """A document with its id and content hash, ready for the unchanged check."""

    doc_id: str
    digest: str
    doc: Document


def as_records(docs: Iterable[Any], spec: FieldSpec) -> Iterator[Document | ReadFailure]:
    """Dicts become Documents (or ReadFailures); Documents and ReadFailures pass through."""
    for number, record in enumerate(docs, start=1):
        if isinstance(record, Document | ReadFailure):
            yield record
        else:
            yield to_document(record, spec, f"input#{number}")


def batched(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def prepare(
    batch: Sequence[Document | ReadFailure],
    contract: IndexContract,
    report: IndexReport,
    sink: DeadLetterSink,
    bar: tqdm[Any],
    seen: set[str] | None = None,
) -> list[Prepared]:
    """Dead-letter the read failures; hash and id the documents; count in-batch duplicates;
    add every id to ``seen`` when given (for --delete-missing)."""
    prepared: list[Prepared] = []
    for record in batch:
        if isinstance(record, ReadFailure):
            sink.add(record.origin, record.reason, record.raw)
            bar.update(1)
            continue
        digest = content_hash(record, contract)
        prepared.append(Prepared(document_id(record, digest), digest, record))
    ids = {p.doc_id for p in prepared}
    report.duplicates += len(prepared) - len(ids)
    if seen is not None:
        seen.update(ids)
    return prepared


def skip_unchanged(
    prepared: list[Prepared], unchanged: set[str], report: IndexReport, bar: tqdm[Any]
) -> list[Prepared]:
    todo = [p for p in prepared if p.doc_id not in unchanged]
    report.skipped += len(prepared) - len(todo)
    bar.update(len(prepared) - len(todo))
    return todo


def build_actions(
    index: str,
    todo: list[Prepared],
    encoded: Sequence[EncodedDoc],
    contract: IndexContract,
    report: IndexReport,
) -> list[Action]:
    """Bulk actions for the encoded documents; counts encoded, truncated and chunked ones."""
    report.encoded += len(todo)
    report.truncated += sum(e.truncated for e in encoded)
    report.chunked += sum(e.chunked for e in encoded)
    report.passages += sum(len(e.passages) for e in encoded)
    return [
        (to_action(index, p.doc_id, p.doc, p.digest, e, contract), p.doc)
        for p, e in zip(todo, encoded, strict=True)
    ]


def fail_prepared(prepared: list[Prepared], sink: DeadLetterSink, exc: BaseException) -> None:
    """Dead-letter a batch that could not be sent because the cluster failed."""
    for p in prepared:
        sink.add(p.doc.origin or p.doc_id, f"not sent: {describe(exc)}", doc_json(p.doc))


def doc_json(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, **dict(doc.texts), **dict(doc.metadata)}


def describe(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {str(text).splitlines()[0][:300]}"


class BulkAccounting:
    """Tracks documents sent but not yet confirmed, so every one ends as indexed or failed."""

    def __init__(self, report: IndexReport, sink: DeadLetterSink, bar: tqdm[Any]) -> None:
        self.report, self.sink, self.bar = report, sink, bar
        self._pending: dict[str, deque[Document]] = {}
        self._lock = threading.Lock()

    def sent(self, action: dict[str, Any], doc: Document) -> None:
        with self._lock:
            self._pending.setdefault(action["_id"], deque()).append(doc)

    def record(self, outcome: BulkOutcome) -> None:
        with self._lock:
            waiting = self._pending.get(outcome.doc_id)
            doc = waiting.popleft() if waiting else None
            if waiting is not None and not waiting:
                del self._pending[outcome.doc_id]
        if outcome.ok:
            self.report.indexed += 1
        else:
            origin = (doc.origin if doc else "") or outcome.doc_id
            self.sink.add(origin, outcome.reason, doc_json(doc) if doc else outcome.doc_id)
        self.bar.update(1)

    def fail(self, items: Iterable[Action] | None, reason: str) -> None:
        """Dead-letter actions that never reached the server."""
        for _, doc in items or ():
            self.sink.add(doc.origin or str(doc.id), reason, doc_json(doc))

    def fail_unconfirmed(self, reason: str) -> None:
        with self._lock:
            pending = [doc for docs in self._pending.values() for doc in docs]
            self._pending.clear()
        for doc in pending:
            self.sink.add(doc.origin or str(doc.id), reason, doc_json(doc))
