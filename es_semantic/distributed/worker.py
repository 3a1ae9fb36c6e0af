"""The Ray actor: one model load and one client per worker; each batch goes through the local
:class:`~es_semantic.indexing.indexer.Indexer` (content-hash skip by ``mget``, chunking, bulk,
dead letters) and comes back as summary rows. A batch that meets a stopped cluster stops the
run (:class:`RunState`); the batches after it, and after Ctrl-C, are dead-lettered unsent
(those of a user's dataset, whose reads the run cannot stop, are left unread instead).

A batch is idempotent: document ids are stable and unchanged documents are skipped, so when
Ray retries a batch on a restarted actor, what the dead actor had written is counted as
skipped, never written twice. Ray restarts a dead actor and retries its batch without limit,
so a record that kills its process (a native crash, the kernel's OOM killer) would be sent
forever: a batch that was begun and never ended is taken again one record at a time, alone
on its worker, and a record in hand when the process died a second time is dead-lettered.
Only a try from the restarted process of the actor whose dead process began a batch is a
retry: the same rows at once on a live worker (a dataset that repeats) are another batch.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import queue
import threading
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
import ray

from es_semantic.config import ESConfig
from es_semantic.distributed.rows import COUNTED, summary_row, to_records
from es_semantic.elastic.client import make_client
from es_semantic.errors import IndexingError
from es_semantic.indexing.batch import open_run
from es_semantic.indexing.indexer import Indexer
from es_semantic.indexing.options import IndexOptions
from es_semantic.types import Document, IndexReport, ReadFailure

# the local engine's reasons for the same records
NOT_SENT = "not sent: indexing stopped"
INTERRUPTED = "not sent: indexing was interrupted"
DIED = ("not sent: the worker process died twice with this record in hand (a native crash or "
        "the memory limit); the run went on without it")  # fmt: skip

SUMMARY_SCHEMA = pa.schema(
    [*((name, pa.int64()) for name in COUNTED), ("encode_seconds", pa.float64()),
     ("dead_letters", pa.list_(pa.string())), ("stopped", pa.string())]
)  # fmt: skip


def load_encoder(model: str | None, options: Mapping[str, Any]) -> Any:
    from transformers.utils import logging as hf_logging

    from es_semantic.encoding.encoder import Encoder  # torch loads in the worker only

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return Encoder(model, **options)


@dataclass
class _Begun:
    """A batch a worker process has begun: the process (``owner``), the record in hand (None:
    the whole batch) and what the deaths of earlier tries tell."""

    owner: str
    hand: int | None = None
    died: bool = False
    poison: set[int] = field(default_factory=set)


class RunState:
    """What the actors share (a Ray actor of its own): why the run stopped, whether it was
    interrupted, and the batches begun and not yet ended. A batch is known by its rows; a
    retry of one is told from another batch of the same rows by its process: a retry comes
    from the restarted process of an actor whose process began it, and that one is dead."""

    def __init__(self, leave_unread: bool = False) -> None:
        self.reason: str | None = None
        self.interrupted = False
        self.begun: dict[int, tuple[str, _Begun]] = {}  # by the number begin() gave
        self.processes: dict[str, str] = {}  # each actor's live process
        self.dead: set[str] = set()
        self.count = 0
        # a user's dataset, whose reads go on after a stop: a batch begun after it is left
        # unread, and the driver stops once it has the records the ended batches account for
        self.leave_unread, self.accounted = leave_unread, 0

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason

    def interrupt(self) -> None:
        self.interrupted = True

    def not_sent(self) -> str | None:
        """The dead-letter reason for records that are no longer sent (None: send them)."""
        return NOT_SENT if self.reason else INTERRUPTED if self.interrupted else None

    def started(self, actor: str | None, process: str) -> None:
        """An actor's process started: the one before it, if any, died."""
        if actor is not None:
            before = self.processes.get(actor)
            if before is not None and before != process:
                self.dead.add(before)
            self.processes[actor] = process

    def begin(self, batch: str, process: str) -> tuple[int, bool, list[int], bool]:
        """The number of this try of a batch, whether a process died on it before, the
        records it died on twice, and whether to leave it unread (the run has stopped)."""
        taken = next((number for number, (rows, begun) in self.begun.items()
                      if rows == batch and begun.owner in self.dead), None)  # fmt: skip
        if taken is None:
            if self.leave_unread and self.not_sent() is not None:
                return 0, False, [], True
            self.count += 1
            self.begun[self.count] = (batch, _Begun(process))
            return self.count, False, [], False
        begun = self.begun[taken][1]
        if begun.hand is None:
            begun.died = True
        else:
            begun.poison.add(begun.hand)
        begun.owner, begun.hand = process, None
        return taken, begun.died, sorted(begun.poison), False

    def hand(self, number: int, record: int | None) -> None:
        self.begun[number][1].hand = record

    def end(self, number: int, records: int) -> None:
        if self.begun.pop(number, None) is not None:
            self.accounted += records

    def drained(self, consumed: int) -> bool:
        """Whether the driver, with ``consumed`` records counted, has every record read of a
        run that stopped (a user's dataset only: files stop being read)."""
        stopped = self.leave_unread and self.not_sent() is not None
        return stopped and not self.begun and self.accounted == consumed


class IndexBatches:
    """``map_batches`` callable: a batch of rows in, its summary rows out.

    ``concurrent`` calls may run at once (threads): one encodes while another waits on its
    ``mget`` and bulk requests, as the local indexer overlaps them. They share the model
    (which encodes one batch at a time) and the client; each has its own Indexer."""

    def __init__(
        self,
        es_config: ESConfig,
        index: str,
        model: str | None,
        encoder_options: Mapping[str, Any],
        options: IndexOptions,
        source: str,
        concurrent: int = 1,
        signal: Any = None,
    ) -> None:
        es, encoder = make_client(es_config), load_encoder(model, encoder_options)
        self._idle: queue.SimpleQueue[Indexer] = queue.SimpleQueue()
        self._alone = threading.Lock()
        for _ in range(concurrent):  # every failure comes back in the batch's report
            indexer = Indexer.from_options(es, index, encoder, options.for_batches())
            self.spec = indexer.field_spec()
            self._idle.put(indexer)
        self.concurrent = concurrent
        self.source, self.index, self.signal, self.options = source, index, signal, options
        self.process = uuid.uuid4().hex  # this process: a restarted actor gets another
        if signal is not None:
            self._call("started", ray.get_runtime_context().get_actor_id(), self.process)

    def __call__(self, batch: pa.Table) -> pa.Table:
        key, died, poison, unread = self._call("begin", _fingerprint(batch), self.process) or (
            0, False, [], False)  # fmt: skip
        if unread:  # a user's dataset after the run stopped: none of this batch is read
            return _table(IndexReport(self.index), None)
        if not died:
            with self._indexers(alone=False) as indexer:
                out = self._index(indexer, batch)
        else:  # its worker died on it: one record at a time, alone, so a death names one
            with self._indexers(alone=True) as indexer:
                out = pa.concat_tables([self._one(indexer, batch, row, key, row in poison)
                                        for row in range(batch.num_rows)])  # fmt: skip
        self._call("end", key, batch.num_rows)
        return out

    def _one(self, indexer: Indexer, batch: pa.Table, row: int, key: int, poison: bool) -> (
        pa.Table):  # fmt: skip
        one = batch.slice(row, 1)
        if poison:
            return _table(self._not_sent(self._records(one), DIED), None)
        self._call("hand", key, row)
        out = self._index(indexer, one)
        self._call("hand", key, None)  # a death from now on is not this record's
        return out

    def _index(self, indexer: Indexer, batch: pa.Table) -> pa.Table:
        records = self._records(batch)
        stopped = None
        try:
            reason = self._call("not_sent")
            report = self._not_sent(records, reason) if reason else indexer.index(records)
        except IndexingError as exc:  # the cluster failed: every document is dead-lettered
            report, stopped = exc.report, exc.reason or str(exc)
            if report is None:  # stopped before the batch began: none of it was sent
                report = self._not_sent(records, f"not sent: {stopped}")
            self._call("stop", stopped)
        return _table(report, stopped)

    def _records(self, batch: pa.Table) -> list[Document | ReadFailure]:
        return list(to_records(batch.to_pylist(), batch.column_names, self.spec, self.source))

    def _call(self, method: str, *args: Any) -> Any:
        """A call to the run's shared state (none when built without one)."""
        if self.signal is None:
            return None
        return ray.get(getattr(self.signal, method).remote(*args))

    @contextlib.contextmanager
    def _indexers(self, alone: bool) -> Iterator[Indexer]:
        """An idle indexer; ``alone``: every indexer, so no other call runs beside it."""
        if not alone:
            taken = [self._idle.get()]
        else:
            with self._alone:
                taken = [self._idle.get() for _ in range(self.concurrent)]
        try:
            yield taken[0]
        finally:
            for indexer in taken:
                self._idle.put(indexer)

    def _not_sent(self, records: list[Document | ReadFailure], reason: str) -> IndexReport:
        """Records that are not sent: each is a dead letter, as the local engine's are."""
        run = open_run(self.index, self.options.for_batches(), [])
        run.fail_records(records, reason)
        return run.close()


def _table(report: IndexReport, stopped: str | None) -> pa.Table:
    dead = [json.dumps(f.to_json(), ensure_ascii=False) for f in report.failures]
    return pa.Table.from_pylist([summary_row(report, dead, stopped)], schema=SUMMARY_SCHEMA)


def _fingerprint(batch: pa.Table) -> str:
    """The same key for the same rows when Ray sends a batch again."""
    rows = json.dumps(batch.to_pylist(), sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.blake2b(rows.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()
