"""The Ray actor: one model load and one client per worker; each batch goes through the local
:class:`~es_semantic.indexing.indexer.Indexer` (content-hash skip by ``mget``, chunking, bulk,
dead letters) and comes back as one summary row. A batch that meets a stopped cluster sets
the run's :class:`StopSignal`; the batches after it are dead-lettered without being sent.

A batch is idempotent: document ids are stable and unchanged documents are skipped, so when
Ray retries a batch on a restarted actor, what the dead actor had written is counted as
skipped, never written twice.
"""

from __future__ import annotations

import json
import queue
from collections.abc import Mapping
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
        options: IndexOptions,
        source: str,
        concurrent: int = 1,
        signal: Any = None,
    ) -> None:
        es, encoder = make_client(es_config), load_encoder(model, encoder_options)
        self._idle: queue.SimpleQueue[Indexer] = queue.SimpleQueue()
        for _ in range(concurrent):  # every failure comes back in the batch's report
            indexer = Indexer.from_options(es, index, encoder, options.for_batches())
            self.spec = indexer.field_spec()
            self._idle.put(indexer)
        self.source, self.index, self.signal, self.options = source, index, signal, options

    def __call__(self, batch: pa.Table) -> pa.Table:
        indexer = self._idle.get()
        try:
            return self._index(indexer, batch)
        finally:
            self._idle.put(indexer)

    def _index(self, indexer: Indexer, batch: pa.Table) -> pa.Table:
        records = list(to_records(batch.to_pylist(), batch.column_names, self.spec, self.source))
        stopped = None
        try:
            if self.signal is not None and ray.get(self.signal.stopped.remote()):
                report = self._not_sent(records)
            else:
                report = indexer.index(records)
        except IndexingError as exc:  # the cluster failed: every document is dead-lettered
            report, stopped = exc.report, exc.reason or str(exc)
            if report is None:  # stopped before the batch began: none of it was sent
                report = self._not_sent(records, f"not sent: {stopped}")
            if self.signal is not None:
                ray.get(self.signal.stop.remote(stopped))
        dead = [json.dumps(f.to_json(), ensure_ascii=False) for f in report.failures]
        return pa.Table.from_pylist([summary_row(report, dead, stopped)], schema=SUMMARY_SCHEMA)

    def _not_sent(self, records: list[Document | ReadFailure], reason: str = NOT_SENT) -> (
        IndexReport):  # fmt: skip
        """The run has stopped: each record is a dead letter, as the local engine's are."""
        run = open_run(self.index, self.options.for_batches(), [])
        run.fail_records(records, reason)
        return run.close()
