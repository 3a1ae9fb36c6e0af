"""The Ray actor: one model load and one client per worker; each batch goes through the local
:class:`~es_semantic.indexing.indexer.Indexer` (content-hash skip by ``mget``, chunking, bulk,
dead letters) and comes back as one summary row. A batch that meets a stopped cluster sets
the run's :class:`StopSignal`; the batches after it are dead-lettered without being sent.

A batch is idempotent: document ids are stable and unchanged documents are skipped, so when
Ray retries a batch on a restarted actor, what the dead actor had written is counted as
skipped, never written twice.
"""

from __future__ import annotations

import queue
import shutil
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import ray
from tqdm import tqdm

from es_semantic.client import make_client
from es_semantic.config import ESConfig
from es_semantic.distributed.rows import COUNTED, summary_row, to_records
from es_semantic.errors import IndexingError
from es_semantic.indexing.batch import IndexRun
from es_semantic.indexing.dead_letter import DeadLetterSink
from es_semantic.indexing.indexer import Indexer
from es_semantic.types import Document, IndexReport, ReadFailure

NOT_SENT = "not sent: indexing stopped"  # the local engine's reason for the same records

SUMMARY_SCHEMA = pa.schema(
    [*((name, pa.int64()) for name in COUNTED), ("encode_seconds", pa.float64()),
     ("dead_letters", pa.list_(pa.string())), ("stopped", pa.string())]
)  # fmt: skip


def load_encoder(model: str | None, options: Mapping[str, Any]) -> Any:
    from transformers.utils import logging as hf_logging

    from es_semantic.encoding.encoder import Encoder  # torch loads in the worker only

    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    return Encoder(model, **options)


class StopSignal:
    """Why the run stopped (the first batch that met a stopped cluster), shared by the actors
    (a Ray actor of its own)."""

    def __init__(self) -> None:
        self.reason: str | None = None

    def stop(self, reason: str) -> None:
        self.reason = self.reason or reason

    def stopped(self) -> str | None:
        return self.reason


class IndexBatches:
    """``map_batches`` callable: a batch of rows in, one summary row out.

    ``concurrent`` calls may run at once (threads): one encodes while another waits on its
    ``mget`` and bulk requests, as the local indexer overlaps them. They share the model
    (which encodes one batch at a time) and the client; each has its own Indexer."""

    def __init__(
        self,
        es_config: ESConfig,
        index: str,
        model: str | None,
        encoder_options: Mapping[str, Any],
        indexer_options: Mapping[str, Any],
        source: str,
        concurrent: int = 1,
        signal: Any = None,
    ) -> None:
        self._dead_dir = Path(tempfile.mkdtemp(prefix="es-semantic-worker-"))
        es, encoder = make_client(es_config), load_encoder(model, encoder_options)
        self._idle: queue.SimpleQueue[tuple[Indexer, Path]] = queue.SimpleQueue()
        for n in range(concurrent):
            dead_letter = self._dead_dir / f"batch-{n}.dead.jsonl"
            indexer = Indexer(es, index, encoder, dead_letter=dead_letter, progress=False,
                              refresh=False, **indexer_options)  # fmt: skip
            self.spec = indexer.field_spec()
            self._idle.put((indexer, dead_letter))
        self.source, self.index, self.signal = source, index, signal

    def __call__(self, batch: pa.Table) -> pa.Table:
        indexer, dead_letter = self._idle.get()
        try:
            return self._index(indexer, dead_letter, batch)
        finally:
            self._idle.put((indexer, dead_letter))

    def _index(self, indexer: Indexer, dead_letter: Path, batch: pa.Table) -> pa.Table:
        records = list(to_records(batch.to_pylist(), batch.column_names, self.spec, self.source))
        stopped = None
        try:
            if self.signal is not None and ray.get(self.signal.stopped.remote()):
                report = self._not_sent(records, dead_letter)
            else:
                report = indexer.index(records)
        except IndexingError as exc:  # the cluster failed: every document is dead-lettered
            if exc.report is None:
                raise
            report, stopped = exc.report, str(exc)
            if self.signal is not None:
                ray.get(self.signal.stop.remote(stopped))
        dead = []
        if dead_letter.exists():
            dead = dead_letter.read_text(encoding="utf-8").splitlines()
            dead_letter.unlink()
        return pa.Table.from_pylist([summary_row(report, dead, stopped)], schema=SUMMARY_SCHEMA)

    def _not_sent(self, records: list[Document | ReadFailure], dead_letter: Path) -> IndexReport:
        """The run has stopped: each record is a dead letter, as the local engine's are."""
        report = IndexReport(self.index)
        run = IndexRun(report, DeadLetterSink(report, dead_letter), tqdm(disable=True))
        run.fail_records(records, NOT_SENT)
        return run.close()

    def __del__(self) -> None:
        shutil.rmtree(getattr(self, "_dead_dir", ""), ignore_errors=True)
