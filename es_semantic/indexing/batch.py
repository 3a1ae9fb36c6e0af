"""A batch's trip, shared by the sync and async indexers: pure steps that return values, and
one :class:`IndexRun` that owns the report, the dead-letter sink and the progress bar.

    records -> prepare() -> PreparedBatch -> unchanged_steps() (mget) -> skip_unchanged()
            -> encode (the shell's thread) -> build_actions() -> bulk -> IndexRun.record()
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import deque
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from tqdm import tqdm

from es_semantic.elastic.calls import Call, Steps
from es_semantic.errors import IndexingError
from es_semantic.indexing.actions import (
    BulkOutcome,
    EncodedDoc,
    VectorFormat,
    content_hash,
    document_id,
    stored_ids,
    to_action,
)
from es_semantic.indexing.dead_letter import DeadLetterSink, PrivateJsonl
from es_semantic.indexing.readers import FieldSpec, to_document
from es_semantic.redact import redact
from es_semantic.schema.contract import IndexContract
from es_semantic.types import Document, IndexReport, ReadFailure

if TYPE_CHECKING:
    from es_semantic.indexing.options import IndexOptions

Action = tuple[dict[str, Any], Document]
T = TypeVar("T")
MAX_LISTED = 1000  # near-duplicates listed in the report (all are counted)
PART_PASSES = 4  # forward passes per encoding part: the bar moves at least this often


@dataclass(frozen=True)
class Prepared:
    """A document with its id and content hash, ready for the unchanged check."""

    doc_id: str
    digest: str
    doc: Document


@dataclass(frozen=True)
class PreparedBatch:
    """What :func:`prepare` made of a batch: documents to go on, records that failed to read,
    and how many documents repeated an id already in the batch."""

    items: list[Prepared] = field(default_factory=list)
    failures: list[ReadFailure] = field(default_factory=list)
    duplicates: int = 0

    @property
    def ids(self) -> set[str]:
        return {p.doc_id for p in self.items}


def as_records(docs: Iterable[Any], spec: FieldSpec) -> Iterator[Document | ReadFailure]:
    """Dicts become Documents (or ReadFailures); Documents and ReadFailures pass through."""
    for number, record in enumerate(docs, start=1):
        yield as_record(record, spec, number)


def as_record(record: Any, spec: FieldSpec, number: int) -> Document | ReadFailure:
    """The ``number``-th input record as a Document (or ReadFailure)."""
    if isinstance(record, Document | ReadFailure):
        return record
    return to_document(record, spec, f"input#{number}")


def batched(records: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(records)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def prepare(batch: Sequence[Document | ReadFailure], contract: IndexContract) -> PreparedBatch:
    """Hash and id the documents; set the read failures apart; count in-batch duplicates."""
    items: list[Prepared] = []
    failures: list[ReadFailure] = []
    for record in batch:
        if isinstance(record, ReadFailure):
            failures.append(record)
            continue
        digest = content_hash(record, contract)
        items.append(Prepared(document_id(record, digest), digest, record))
    duplicates = len(items) - len({p.doc_id for p in items})
    return PreparedBatch(items, failures, duplicates)


def unchanged_steps(index: str, prepared: Sequence[Prepared]) -> Steps[tuple[set[str], set[str]]]:
    """One ``mget``: the ids whose stored content hash equals the new one (nothing to encode),
    and the ids stored at all (the others of them are updates)."""
    if not prepared:
        return set(), set()
    wanted = {p.doc_id: p.digest for p in prepared}
    call = Call("mget", {"index": index, "ids": list(wanted), "source_includes": ["content_hash"]})
    resp = (yield call).raise_for_error()
    return stored_ids(wanted, resp["docs"])


def encoding_parts(items: Sequence[T], rows: int, *, first: bool) -> Iterator[Sequence[T]]:
    """A batch cut into parts of PART_PASSES forward passes of ``rows`` texts, so the bar moves
    while a large batch encodes; a run's ``first`` part is one pass, for a rate within seconds."""
    size, start = max(1, rows) * PART_PASSES, 0
    if first and items:
        start = max(1, rows)
        yield items[:start]
    for i in range(start, len(items), size):
        yield items[i : i + size]


def shortest_first(todo: Sequence[Prepared]) -> list[Prepared]:
    """The documents by text length: parts cut from this order hold texts of similar length."""
    return sorted(todo, key=lambda p: len(p.doc.full_text()))


def skip_unchanged(prepared: Sequence[Prepared], unchanged: set[str]) -> list[Prepared]:
    return [p for p in prepared if p.doc_id not in unchanged]


def build_actions(
    index: str,
    todo: Sequence[Prepared],
    encoded: Sequence[EncodedDoc],
    contract: IndexContract,
    vector_format: VectorFormat = "json",
) -> list[Action]:
    """Bulk actions for the encoded documents (each with its document, for accounting)."""
    return [
        (to_action(index, p.doc_id, p.doc, p.digest, e, contract, vector_format), p.doc)
        for p, e in zip(todo, encoded, strict=True)
    ]


def open_run(
    index: str, options: IndexOptions, secrets: Sequence[str], total: int | None = None
) -> IndexRun:
    """A run's report, dead-letter sink, near-duplicates file and progress bar (count, rate
    and, when ``total`` is known, time left)."""
    report = IndexReport(index)
    bar = tqdm(desc=f"indexing {index}", unit="doc", total=total, disable=not options.progress,
               dynamic_ncols=True, postfix="reading")  # fmt: skip
    keep = options.report_failures if options.dead_letter else None  # no file: keep them all
    sink = DeadLetterSink(report, options.dead_letter, secrets, keep=keep)
    return IndexRun(report, sink, bar, PrivateJsonl(options.duplicates_file))


def stopped_error(
    index: str, reason: str, report: IndexReport, secrets: Sequence[str]
) -> IndexingError:
    """The one error of a run that had to stop, carrying its report."""
    stopped = IndexingError(
        redact(
            f"indexing into {index!r} stopped: {reason}. {report.indexed} documents were "
            "indexed; re-run the same command to resume (unchanged documents are skipped "
            "without encoding).",
            secrets,
        )
    )
    stopped.report, stopped.reason = report, redact(reason, secrets)
    return stopped


def doc_json(doc: Document) -> dict[str, Any]:
    return {"id": doc.id, **dict(doc.texts), **dict(doc.metadata)}


def describe(exc: BaseException) -> str:
    text = getattr(exc, "message", None) or str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {str(text).splitlines()[0][:300]}"


class IndexRun:
    """One indexing run: every count, dead letter and progress tick goes through here, so each
    input record ends as indexed, skipped or failed exactly once. Thread-safe.

    The bar counts a document once: when it leaves the encoder (so it moves while encoding),
    or when it is settled without being encoded (skipped, failed); its postfix names the
    producer's stage (reading, encoding, sending) and how many the cluster confirmed."""

    def __init__(
        self,
        report: IndexReport,
        sink: DeadLetterSink,
        bar: tqdm[Any],
        duplicates: PrivateJsonl | None = None,
    ) -> None:
        self.report, self.sink, self.bar = report, sink, bar
        self.duplicates = duplicates or PrivateJsonl(None)  # near-duplicates left out
        self.started = time.perf_counter()
        self._pending: dict[str, deque[Document]] = {}
        # the producer's batch: records read but not yet accounted for nor handed to a sender
        self._in_hand: dict[int, list[Document | ReadFailure]] = {}
        self._lock = threading.RLock()  # bulk senders and the producer count side by side
        self._closed = False  # a sender that outlived the run reports nothing any more
        self._ahead: dict[int, int] = {}  # documents counted on the bar when encoded
        self._stage = "reading"

    # --- the producer side: a batch in hand, each record released once it is accounted ---

    def taking(self, records: Iterable[Document | ReadFailure]) -> Iterator[Document | ReadFailure]:
        """``records``, each held by the producer from the moment it is read: whatever happens,
        each ends in this run (a reader that fails mid-batch leaves none unaccounted)."""
        for record in records:
            with self._lock:
                self._in_hand.setdefault(id(record), []).append(record)
                if self._stage != "reading":
                    self.stage("reading")
            yield record

    def hand_over(self) -> None:
        """The records in hand went to the senders, which account for them from now on."""
        with self._lock:
            self._in_hand.clear()
            self.stage("sending")

    def stage(self, name: str) -> None:
        """What the producer does now (reading, encoding, sending), shown on the bar."""
        with self._lock:
            self._stage = name
            self.bar.set_postfix_str(f"{name}, {self.report.indexed} indexed")

    def encoded_docs(self, docs: Iterable[Document]) -> None:
        """Documents out of the encoder: counted on the bar now, not again when settled."""
        with self._lock:
            if self._closed:
                return
            count = 0
            for doc in docs:
                self._ahead[id(doc)] = self._ahead.get(id(doc), 0) + 1
                count += 1
            self.bar.update(count)

    def _tick(self, doc: Document | None) -> None:
        """A document settled: one step on the bar unless it was counted when encoded."""
        ahead = self._ahead.get(id(doc), 0) if doc is not None else 0
        if not ahead:
            self.bar.update(1)
        elif ahead == 1:
            del self._ahead[id(doc)]
        else:
            self._ahead[id(doc)] = ahead - 1

    def fail_in_hand(self, reason: str) -> None:
        """After an error or interrupt: every record still in hand is a dead letter."""
        with self._lock:
            held = [record for records in self._in_hand.values() for record in records]
        self.fail_records(held, reason)

    def _release(self, record: Document | ReadFailure) -> None:
        held = self._in_hand.get(id(record))
        if held:
            held.pop()
            if not held:
                del self._in_hand[id(record)]

    def fail(self, origin: str, reason: str, raw: Any, doc: Document | None = None) -> None:
        """A dead letter (``doc``: the document, when it may have been counted encoded)."""
        with self._lock:
            if self._closed:
                return
            self.sink.add(origin, reason, raw)
            self._tick(doc)

    def fail_records(self, records: Iterable[Document | ReadFailure], reason: str) -> None:
        """Records that will never be sent (a read failure keeps its own reason)."""
        for record in records:
            with self._lock:
                self._release(record)
                if isinstance(record, ReadFailure):
                    self.fail(record.origin, record.reason, record.raw)
                else:
                    self.fail(record.origin or str(record.id), reason, doc_json(record), record)

    def read(self, batch: PreparedBatch) -> None:
        """Dead-letter what could not be read; count the in-batch duplicates."""
        self.fail_records(batch.failures, "")
        self.report.duplicates += batch.duplicates

    def skipped(self, records: Sequence[Document]) -> None:
        """Documents left as they are in the index (their content is unchanged)."""
        with self._lock:
            for record in records:
                self._release(record)
            self.report.skipped += len(records)
            self.bar.update(len(records))

    def near_duplicate(self, prepared: Prepared, of: str, score: float, action: str) -> None:
        """A document whose nearest neighbour is at or above the dedupe threshold: ``flagged``
        (indexed with ``duplicate_of``), ``skipped`` (left out, its document written to the
        duplicates file) or ``updated`` (left out would keep a stale version of its id in the
        index, so it is indexed)."""
        entry = {"id": prepared.doc_id, "duplicate_of": of, "score": round(score, 6),
                 "action": action}  # fmt: skip
        with self._lock:
            if len(self.report.near_duplicates) < MAX_LISTED:
                self.report.near_duplicates.append(entry)
            if action != "skipped":
                self.report.flagged += 1
                return
            self._release(prepared.doc)
            self.report.deduplicated += 1
            self._tick(prepared.doc)
            if self.duplicates.write({**entry, "document": doc_json(prepared.doc)}):
                self.report.duplicates_file = str(self.duplicates.path)

    def encoded(self, encoded: Sequence[EncodedDoc], seconds: float) -> None:
        self.report.encoded += len(encoded)
        self.report.truncated += sum(e.truncated for e in encoded)
        self.report.chunked += sum(e.chunked for e in encoded)
        self.report.passages += sum(len(e.passages) for e in encoded)
        self.report.encode_seconds += seconds

    # --- the bulk side: documents sent but not yet confirmed ---

    def sent(self, action: dict[str, Any], doc: Document) -> None:
        with self._lock:
            self._pending.setdefault(action["_id"], deque()).append(doc)

    def record(self, outcome: BulkOutcome) -> None:
        """One bulk item's outcome: indexed, or a dead letter with the server's reason."""
        with self._lock:
            waiting = self._pending.get(outcome.doc_id)
            if not waiting or self._closed:  # already failed as unconfirmed: counted once
                return
            doc = waiting.popleft()
            if not waiting:
                del self._pending[outcome.doc_id]
            if outcome.ok:
                self.report.indexed += 1
                self._tick(doc)
                self.bar.set_postfix_str(f"{self._stage}, {self.report.indexed} indexed", False)
                return
            origin = (doc.origin if doc else "") or outcome.doc_id
            self.fail(origin, outcome.reason, doc_json(doc) if doc else outcome.doc_id, doc)

    def fail_actions(self, items: Iterable[Action] | None, reason: str) -> None:
        """Dead-letter actions that never reached the server."""
        self.fail_records((doc for _, doc in items or ()), reason)

    def fail_unconfirmed(self, reason: str) -> None:
        with self._lock:
            pending = [doc for docs in self._pending.values() for doc in docs]
            self._pending.clear()
        self.fail_records(pending, reason)

    def close(self) -> IndexReport:
        """The report, final: later outcomes (a sender that outlived the run) are ignored."""
        with self._lock:
            if self._closed:
                return self.report
            self._closed = True
        self.sink.close()
        self.duplicates.close()
        self.bar.set_postfix_str(f"done, {self.report.indexed} indexed", refresh=False)
        self.bar.close()
        self.report.seconds = time.perf_counter() - self.started
        return self.report
