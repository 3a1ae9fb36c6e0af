"""Indexer: records -> encode -> streaming_bulk (in a second thread) -> IndexReport.

Encoding of batch N+1 overlaps the bulk requests of batch N; memory is bounded by a queue of two
batches. Re-runs skip documents whose stored content hash is unchanged, without encoding them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping, Sequence, Sized
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch

from es_semantic.elastic.calls import Steps
from es_semantic.elastic.calls import run as run_steps
from es_semantic.encoding.images import ImageReadError
from es_semantic.errors import IndexingError, IndexingInterrupted, SearchError
from es_semantic.indexing import batch as steps
from es_semantic.indexing.actions import EncodedDoc, VectorFormat
from es_semantic.indexing.bulk_pipeline import BulkPipeline, PipelineStopped
from es_semantic.indexing.dedupe import (
    Match,
    RunMemory,
    apply_verdicts,
    decide,
    probe_steps,
    vectors_of,
)
from es_semantic.indexing.options import DedupeMode, IndexOptions
from es_semantic.indexing.passages import encode_documents
from es_semantic.indexing.readers import FieldSpec
from es_semantic.indexing.setup import IndexSetup
from es_semantic.redact import client_secrets
from es_semantic.schema.contract import IndexContract
from es_semantic.types import IndexReport

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.images import ImageEncoder
    from es_semantic.encoding.sparse import SparseEncoder

# The cluster's failures, which stop a run (the records in hand become dead letters).
STOPPING_ERRORS = (ApiError, TransportError, SearchError)
FAILING_STREAK = 8  # documents in a row the encoder refuses alone: the model, not the data


ClientT = TypeVar("ClientT")
IndexerT = TypeVar("IndexerT", bound="_IndexerBase[Any]")


class _IndexerBase(Generic[ClientT]):
    """Options and contract logic shared by the sync and async indexers (one signature for
    both: ``es`` is an ``Elasticsearch`` or an ``AsyncElasticsearch``).

    ``metadata_fields``: names (keyword) or {name: type}; ``similarity``, ``index_options``,
    ``analyzer``, ``keep_vectors_in_source``, ``chunking``, ``chunk_tokens``,
    ``chunk_overlap``: the contract of a new index; ``batch_size``: documents encoded at a
    time; ``chunk_size``, ``max_chunk_bytes``, ``max_retries``, ``initial_backoff``,
    ``max_backoff``: bulk requests; ``dead_letter``: JSONL file for failed documents;
    ``refresh``: refresh the index after the run; ``vector_format``: ``auto`` sends vectors
    as base64 float32 to clusters that accept it (9.3+) and as JSON arrays otherwise;
    ``senders``: bulk requests in flight at once (the sync indexer; a document id always goes
    through the same sender: see ``BulkPipeline`` on order); ``track_ids``: keep
    every id read (``seen_ids``, for deleting what the input no longer has);
    ``dedupe_threshold``: a document whose nearest neighbour (in the index, or earlier in this
    run) is at least this similar is a near-duplicate, ``dedupe``: ``flag`` indexes it with
    ``duplicate_of`` (a filterable keyword field), ``skip`` leaves it out (but never an
    update of an id the index holds) and writes it to ``duplicates_file``; both are counted
    in the report. ``sparse_encoder``: a :class:`SparseEncoder` for an index with a learned
    sparse leg (a new index gets one; ``sparse_leg``: its ``SparseLeg`` options, e.g.
    ``prune``)."""

    def __init__(
        self,
        es: ClientT,
        index: str,
        encoder: Encoder | ImageEncoder,
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
        dedupe_threshold: float | None = None,
        dedupe: DedupeMode = "flag",
        duplicates_file: str | Path | None = None,
        vector_format: str = "auto",
        senders: int = 2,
        sparse_encoder: SparseEncoder | None = None,
        sparse_leg: Mapping[str, Any] | None = None,
    ) -> None:
        self._configure(es, index, encoder, IndexOptions.of(
            id_field=id_field, text_fields=text_fields,
            metadata_fields=metadata_fields, similarity=similarity, index_options=index_options,
            analyzer=analyzer, keep_vectors_in_source=keep_vectors_in_source, chunking=chunking,
            chunk_tokens=chunk_tokens, chunk_overlap=chunk_overlap, batch_size=batch_size,
            chunk_size=chunk_size, max_chunk_bytes=max_chunk_bytes, max_retries=max_retries,
            initial_backoff=initial_backoff, max_backoff=max_backoff, dead_letter=dead_letter,
            progress=progress, refresh=refresh, track_ids=track_ids,
            dedupe_threshold=dedupe_threshold, dedupe=dedupe, duplicates_file=duplicates_file,
            vector_format=vector_format, senders=senders, sparse_encoder=sparse_encoder,
            sparse_leg=dict(sparse_leg or {}),
        ))  # fmt: skip

    @classmethod
    def from_options(
        cls: type[IndexerT],
        es: ClientT,
        index: str,
        encoder: Encoder | ImageEncoder,
        options: IndexOptions,
    ) -> IndexerT:
        """An indexer with options made already (the Ray workers')."""
        indexer = cls.__new__(cls)
        indexer._configure(es, index, encoder, options)
        return indexer

    def _configure(
        self, es: ClientT, index: str, encoder: Encoder | ImageEncoder, options: IndexOptions
    ) -> None:
        self.es, self.index_name, self.encoder, self.options = es, index, encoder, options
        self.setup = IndexSetup(index, encoder.config, options)
        self.sparse_encoder: SparseEncoder | None = options.load_sparse()
        self._memory: RunMemory | None = None
        self._failing = 0  # documents the encoder refused in a row
        # ids of every document read (indexed, skipped or failed in bulk), for --delete-missing
        self.seen_ids: set[str] | None = set() if options.track_ids else None
        self.secrets = client_secrets(es)  # the client's credentials, kept out of every message

    @property
    def contract(self) -> IndexContract | None:
        return self.setup.contract

    @property
    def target(self) -> str:
        """The concrete index written to (the alias's write index, once resolved)."""
        return self.setup.target

    @property
    def created(self) -> bool:
        """Whether this indexer created the index (then nothing in it needs looking up)."""
        return self.setup.created

    @created.setter
    def created(self, value: bool) -> None:
        self.setup.created = value

    @property
    def vector_format(self) -> VectorFormat:
        return self.setup.vector_format

    def _start(self, docs: Any, total: int | None) -> steps.IndexRun:
        """A run: its report, dead-letter sink and progress bar (count, rate and, when the
        number of documents is known, time left)."""
        if total is None and isinstance(docs, Sized):
            total = len(docs)
        run = steps.open_run(self.index_name, self.options, self.secrets, total)
        run.report.encoder = self.encoder.config.ran()
        return run

    def _batch_steps(
        self, batch: list[Any], contract: IndexContract, run: steps.IndexRun
    ) -> Steps[tuple[list[steps.Prepared], set[str]]]:
        """Read, hash and id a batch: the documents whose content changed (to encode), and
        which ids the index holds already (an update, never skipped as a near-duplicate)."""
        prepared = steps.prepare(batch, contract)
        run.read(prepared)
        if self.seen_ids is not None:
            self.seen_ids.update(prepared.ids)
        unchanged, stored = (
            (set(), set()) if self.created
            else (yield from steps.unchanged_steps(self.target, prepared.items))
        )  # fmt: skip
        run.skipped([p.doc for p in prepared.items if p.doc_id in unchanged])
        return steps.skip_unchanged(prepared.items, unchanged), stored

    def _encode(
        self, todo: list[steps.Prepared], contract: IndexContract, run: steps.IndexRun
    ) -> tuple[list[steps.Prepared], list[EncodedDoc]]:
        """Encode the documents (the model's work: a thread in the async indexer). When the
        batch fails, each document is tried alone: one that fails alone is a dead letter. The
        run stops when the model looks broken rather than the documents bad: every document of
        a batch of several failed, or FAILING_STREAK documents in a row did (an image whose
        body cannot be decoded is a bad file, not a failing model: it counts for neither)."""
        t0 = time.perf_counter()
        try:
            docs = [p.doc for p in todo]
            encoded = encode_documents(self.encoder, docs, contract, self.sparse_encoder)
        except Exception as exc:  # the model's own errors: try the documents one by one
            return self._encode_one_by_one(todo, contract, run, exc)
        self._failing = 0
        run.encoded(encoded, time.perf_counter() - t0)
        return todo, encoded

    def _encode_parts(
        self, todo: list[steps.Prepared], contract: IndexContract, run: steps.IndexRun
    ) -> tuple[list[steps.Prepared], list[EncodedDoc]]:
        """:meth:`_encode` a part at a time (``steps.encoding_parts``): the bar counts each
        part's documents as they leave the encoder, not when the batch is sent. Parts are cut
        from the batch sorted by length (they pad about as little as the whole batch would);
        what comes back is in the batch's order."""
        position = {id(p): i for i, p in enumerate(todo)}
        done: list[tuple[int, steps.Prepared, EncodedDoc]] = []
        rows = int(getattr(self.encoder, "batch_size", 32))
        by_length = steps.shortest_first(todo)
        for part in steps.encoding_parts(by_length, rows, first=run.report.encoded == 0):
            run.stage("encoding")
            kept, vectors = self._encode(list(part), contract, run)
            run.encoded_docs(p.doc for p in kept)
            done += [(position[id(p)], p, v) for p, v in zip(kept, vectors, strict=True)]
        done.sort(key=lambda item: item[0])
        return [p for _, p, _ in done], [v for _, _, v in done]

    def _encode_one_by_one(
        self, todo: list[steps.Prepared], contract: IndexContract, run: steps.IndexRun,
        batch_error: Exception,
    ) -> tuple[list[steps.Prepared], list[EncodedDoc]]:  # fmt: skip
        kept: list[steps.Prepared] = []
        encoded: list[EncodedDoc] = []
        model_errors: list[Exception] = []  # a bad image body is the file's fault, not these
        for prepared in todo:
            t0 = time.perf_counter()
            try:
                one = encode_documents(self.encoder, [prepared.doc], contract, self.sparse_encoder)
            except ImageReadError as exc:  # its message names the file and why, as a reader's
                run.fail_records([prepared.doc], str(exc))
                continue
            except Exception as exc:
                run.fail_records([prepared.doc], f"encoding failed: {steps.describe(exc)}")
                self._failing += 1
                model_errors.append(exc)
                continue
            self._failing = 0
            run.encoded(one, time.perf_counter() - t0)
            kept.append(prepared)
            encoded += one
        if not kept and model_errors and (len(model_errors) > 1 or self._failing >= FAILING_STREAK):
            raise model_errors[0] if isinstance(batch_error, ImageReadError) else batch_error
        return kept, encoded

    def _actions_steps(
        self,
        todo: list[steps.Prepared],
        encoded: list[EncodedDoc],
        stored: set[str],
        contract: IndexContract,
        run: steps.IndexRun,
    ) -> Steps[list[steps.Action]]:
        """Bulk actions for the encoded documents; with a dedupe threshold, near-duplicates
        are flagged (``duplicate_of``) or left out, and counted either way. An update of an
        id the index holds is never left out: that would keep its stale version."""
        threshold = self.options.dedupe_threshold
        if threshold is None or not todo:
            return steps.build_actions(self.target, todo, encoded, contract, self.vector_format)
        if self._memory is None:
            self._memory = RunMemory(contract.similarity)
        vectors = [vectors_of(e) for e in encoded]
        ids = [p.doc_id for p in todo]
        in_index: list[Match | None] = [None] * len(todo)
        if not self.created:
            items = list(zip(ids, vectors, strict=True))
            in_index = yield from probe_steps(self.target, contract, items, threshold)
        verdicts = decide(ids, vectors, in_index, self._memory, threshold, self.options.dedupe)
        kept = apply_verdicts(todo, encoded, verdicts, stored, self.options.dedupe, run)
        return steps.build_actions(self.target, [p for p, _ in kept], [e for _, e in kept],
                                   contract, self.vector_format)  # fmt: skip

    def _ended(self, error: BaseException, run: steps.IndexRun) -> BaseException:
        """What to raise when a run ends early: the records in hand become dead letters and
        the error carries the report (an interrupt stays an interrupt)."""
        run.fail_unconfirmed("not confirmed by the server: the run stopped")  # if any is left
        if isinstance(error, KeyboardInterrupt):
            run.fail_in_hand("not sent: indexing was interrupted")
            interrupted = IndexingInterrupted(
                f"indexing into {self.index_name!r} was interrupted; re-run the same command to "
                "resume (unchanged documents are skipped without encoding)"
            )
            interrupted.report = run.close()
            return interrupted
        if isinstance(error, Exception):
            run.fail_in_hand(f"not sent: {steps.describe(error)}")
            return self._stopped_error(error, run.close())
        run.fail_in_hand(f"not sent: {steps.describe(error)}")  # SystemExit and the like
        run.close()
        return error

    def _refresh_error(self, error: BaseException, report: IndexReport) -> IndexingError:
        reason = f"the final refresh failed ({steps.describe(error)}); the documents are indexed"
        return steps.stopped_error(self.index_name, reason, report, self.secrets)

    def _stopped_error(self, error: BaseException, report: IndexReport) -> IndexingError:
        return steps.stopped_error(self.index_name, steps.describe(error), report, self.secrets)


class Indexer(_IndexerBase[Elasticsearch]):
    """Index documents into ``index`` with ``encoder``, creating the index when absent.

    >>> Indexer(es, "docs", Encoder()).index([{"id": "1", "text": "hello"}])  # doctest: +SKIP
    IndexReport(index='docs', indexed=1, ...)
    """

    def ensure_index(self) -> IndexContract:
        """Create the index from the encoder's contract, or check the existing one's."""
        return run_steps(self.es, self.setup.steps())

    def field_spec(self) -> FieldSpec:
        """Which input fields are id, text and metadata for this index."""
        self.ensure_index()
        return self.setup.spec()

    def index(self, docs: Iterable[Any], *, total: int | None = None) -> IndexReport:
        """Index ``docs`` (dicts, Documents or ReadFailures); every one ends up counted.

        ``total``: how many there are, for the progress bar (taken from ``len(docs)`` when
        it has one). A run that stops raises :class:`IndexingError` (an interrupt
        :class:`IndexingInterrupted`) carrying the report."""
        contract = self.ensure_index()
        run = self._start(docs, total)
        self._memory = None  # near-duplicates are looked for among this run's documents
        records = run.taking(steps.as_records(docs, self.setup.spec()))
        pipe = BulkPipeline(self.es, self.options.bulk_options(), run, self.options.senders)
        try:
            for batch in steps.batched(records, self.options.batch_size):
                self._index_batch(batch, contract, run, pipe)
            pipe.close()
        except PipelineStopped:
            pass  # pipe.error says why
        except BaseException as exc:  # the encoder, a reader, an interrupt: not the cluster
            try:
                if isinstance(exc, Exception):
                    pipe.close()  # what the senders hold gets its real outcome
                pipe.abort_and_account()
            finally:  # even when a second Ctrl-C cuts the waiting short
                pipe.drain("not sent: indexing was interrupted")
                raise self._ended(exc, run) from exc
        pipe.abort_and_account()
        if pipe.error is not None:
            raise self._ended(pipe.error, run) from None
        report = run.close()
        if self.options.refresh:
            try:
                self.es.indices.refresh(index=self.target)
            except STOPPING_ERRORS as exc:  # every record is counted: say so with the error
                raise self._refresh_error(exc, report) from None
        return report

    def _index_batch(
        self, batch: list[Any], contract: IndexContract, run: steps.IndexRun, pipe: BulkPipeline
    ) -> None:
        if pipe.error is not None:
            raise PipelineStopped
        try:
            todo, stored = run_steps(self.es, self._batch_steps(batch, contract, run))
            todo, encoded = self._encode_parts(todo, contract, run) if todo else ([], [])
            actions = run_steps(self.es, self._actions_steps(todo, encoded, stored, contract, run))
        except STOPPING_ERRORS as exc:
            pipe.error = pipe.error or exc
            raise PipelineStopped from None
        run.hand_over()
        if actions:
            pipe.put(actions)
