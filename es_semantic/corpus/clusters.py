"""Topic clusters over an index: fit k-means on a sample of its vectors, assign every
document, label each cluster, optionally write the cluster id back as a metadata field.

Reads the index through a point in time (:mod:`es_semantic.corpus.scan`): once when the whole
index fits in the sample, else twice (sample, then assign). The index contract is checked
against the encoder before anything is read or written: on passage indices the vectors are
re-encoded with it.

Writing back re-indexes each whole document with its vectors and the new field. A partial
``update`` would rebuild the document from ``_source``, where es-semantic keeps no vectors (the
mapping excludes them), and so would drop them. Each write is guarded by optimistic concurrency
control: ``if_seq_no``/``if_primary_term`` of the version the scan read, so a document changed
or deleted since the scan gets a 409 version conflict from Elasticsearch, is counted among
``conflicts`` and left as it is (never overwritten with the scanned copy, never brought back).
The sparse leg's vectors are not in ``_source`` either: the write-back makes them again with
the leg's model (given, or found from the contract), checked against the leg first.
"""

from __future__ import annotations

import heapq
import random
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from elasticsearch import Elasticsearch, helpers
from tqdm import tqdm

from es_semantic.corpus.pairs import text_snippet
from es_semantic.corpus.scan import DocVectors, scan_query, vector_pages
from es_semantic.corpus.topics import Topic, ctfidf_labels, kmeans, terms_of
from es_semantic.elastic.calls import run
from es_semantic.errors import ConfigError
from es_semantic.indexing.actions import parse_bulk_item
from es_semantic.indexing.admin import add_metadata_field_steps, read_pinned_steps
from es_semantic.schema.contract import PASSAGES_FIELD, IndexContract, escape_vector
from es_semantic.schema.filters import build_filters
from es_semantic.schema.similarity import unit_rows

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.sparse import SparseEncoder

PAGE_SIZE = 200
VERSION_CONFLICT = 409  # the document changed or was deleted since the scan read it


@dataclass
class ClusterReport:
    """The topics of an index (largest first) and what was read and written."""

    index: str
    k: int
    documents: int = 0
    sampled: int = 0
    written: int = 0
    failed: int = 0
    write_field: str | None = None
    topics: list[Topic] = field(default_factory=list)
    conflict_ids: list[str] = field(default_factory=list)  # changed or deleted since the scan
    failures: list[tuple[str, str]] = field(default_factory=list)  # (id, the server's reason)

    @property
    def conflicts(self) -> int:
        return len(self.conflict_ids)

    def to_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "k": self.k,
            "documents": self.documents,
            "sampled": self.sampled,
            "written": self.written,
            "conflicts": self.conflicts,
            "failed": self.failed,
            "field": self.write_field,
            "conflict_ids": self.conflict_ids,
            "failures": [{"id": doc_id, "reason": why} for doc_id, why in self.failures],
            "clusters": [t.to_json() for t in self.topics],
        }


def cluster_index(
    es: Elasticsearch,
    index: str,
    *,
    k: int,
    sample: int = 10_000,
    filters: Mapping[str, Any] | None = None,
    encoder: Encoder | None = None,
    write_field: str | None = None,
    top_terms: int = 8,
    central: int = 3,
    seed: int = 0,
    progress: bool = False,
    sparse_encoder: SparseEncoder | None = None,
) -> ClusterReport:
    """``k`` topic clusters of ``index``; ``write_field``: store each document's cluster id
    there (an ``integer`` metadata field, filterable; documents changed or deleted since the
    scan are left as they are, see ``conflict_ids``); ``encoder``: the index's model, needed on
    chunked indices (checked against the index contract); ``sparse_encoder``: the sparse
    leg's model, for a write-back on an index with one (None: found from the contract)."""
    if k < 2 or sample < k:
        raise ConfigError(f"k={k} must be >= 2 and --sample ({sample}) at least k")
    contract, pinned = run(es, read_pinned_steps(index))  # each pass is checked against it
    if encoder is not None:  # before anything compares or writes vectors
        contract.check(encoder.config, index)
    sparse = _sparse_model(contract, index, sparse_encoder) if write_field is not None else None
    built = build_filters(filters, list(contract.metadata_fields))
    total = int(es.count(index=index, query=scan_query(contract, built))["count"])
    if total < k:
        raise ConfigError(f"index {index!r} has {total} documents with vectors: fewer than k={k}")
    report = ClusterReport(index, k, write_field=write_field)
    docs = _scan(es, index, contract, built, encoder, total, progress, "sampling", pinned)
    chosen = _reservoir(docs, sample, seed)
    report.sampled = len(chosen)
    model = kmeans(np.stack([d.mean_vector() for d in chosen]), k, seed)
    centres = unit_rows(model.cluster_centers_.astype(np.float32))
    topics = [Topic(i) for i in range(k)]
    counts: list[Counter[str]] = [Counter() for _ in range(k)]
    nearest: list[list[tuple[float, str, str]]] = [[] for _ in range(k)]
    if write_field is not None:
        contract = run(es, add_metadata_field_steps(index, contract, write_field, "integer"))
    assigned = chosen if total <= sample and write_field is None else None
    stream = assigned or _scan(es, index, contract, built, encoder, total, progress, "assigning",
                               pinned)  # fmt: skip
    writer = _Writer(es, index, contract, write_field, sparse) if write_field else None
    for page in _chunks(stream, PAGE_SIZE):
        vectors = np.stack([d.mean_vector() for d in page])  # unit rows already
        labels = model.predict(vectors)
        for doc, label, vector in zip(page, labels, vectors, strict=True):
            topic = topics[int(label)]
            topic.size += 1
            similarity = float(vector @ centres[int(label)])
            snippet = text_snippet(doc.source, contract.text_fields)
            entry = (similarity, doc.id, snippet)
            heap = nearest[int(label)]
            (heapq.heappush if len(heap) < central else heapq.heappushpop)(heap, entry)
            counts[int(label)].update(terms_of(" ".join(
                str(doc.source.get(f, "")) for f in contract.text_fields)))  # fmt: skip
        if writer is not None:
            writer.write(page, labels)
        report.documents += len(page)
    if writer is not None:
        writer.close()
        report.written, report.failed = writer.written, len(writer.failures)
        report.conflict_ids, report.failures = writer.conflicts, writer.failures
    for topic, heap, terms in zip(topics, nearest, ctfidf_labels(counts, top_terms), strict=True):
        topic.central = [(doc_id, sim, snip) for sim, doc_id, snip in sorted(heap, reverse=True)]
        topic.terms = terms
    report.topics = sorted(topics, key=lambda t: (-t.size, t.id))
    return report


def _sparse_model(
    contract: IndexContract, index: str, given: SparseEncoder | None
) -> SparseEncoder | None:
    """The model that makes the sparse leg's vectors again for the write-back (None: the
    index has no sparse leg, or keeps its vectors in ``_source``), checked against the leg
    before anything is read or written."""
    leg = contract.sparse
    if leg is None or contract.keep_vectors_in_source:
        return None
    if given is None:
        from es_semantic.encoding.sparse import SparseEncoder
        from es_semantic.encoding.sparse_models import locate

        given = SparseEncoder(locate(leg, index), query_mode=leg.query_mode,
                              max_active_dims=leg.max_active_dims)  # fmt: skip
    leg.check(given.spec, index, for_indexing=True, max_active_dims=given.max_active_dims)
    return given


def _scan(
    es: Elasticsearch,
    index: str,
    contract: IndexContract,
    filters: list[dict[str, Any]],
    encoder: Encoder | None,
    total: int,
    progress: bool,
    what: str,
    pinned: list[str],
) -> Iterator[DocVectors]:
    with tqdm(total=total, desc=f"{what} {index}", unit="doc", disable=not progress) as bar:
        for page in vector_pages(es, index, contract, filters=filters, encoder=encoder,
                                 page_size=PAGE_SIZE, pinned=pinned):  # fmt: skip
            yield from page
            bar.update(len(page))


def _reservoir(docs: Iterator[DocVectors], size: int, seed: int) -> list[DocVectors]:
    """A uniform sample of ``size`` documents from a stream of unknown length."""
    rng = random.Random(seed)  # noqa: S311 - sampling, not security
    chosen: list[DocVectors] = []
    for seen, doc in enumerate(docs):
        if len(chosen) < size:
            chosen.append(doc)
        elif (slot := rng.randint(0, seen)) < size:
            chosen[slot] = doc
    return chosen


def _chunks(docs: Iterator[DocVectors] | list[DocVectors], size: int) -> Iterator[list[DocVectors]]:
    page: list[DocVectors] = []
    for doc in docs:
        page.append(doc)
        if len(page) == size:
            yield page
            page = []
    if page:
        yield page


class _Writer:
    """Re-indexes whole documents with their vectors and the cluster id (bulk ``index``, no
    partial update: that would drop the vectors ``_source`` does not keep), each only if it is
    still the version the scan read (``if_seq_no``/``if_primary_term``)."""

    def __init__(
        self, es: Elasticsearch, index: str, contract: IndexContract, field: str | None,
        sparse: SparseEncoder | None = None,
    ) -> None:  # fmt: skip
        self.es, self.index, self.contract, self.field = es, index, contract, field
        self.sparse = sparse
        self.written = 0
        self.conflicts: list[str] = []
        self.failures: list[tuple[str, str]] = []

    def write(self, page: list[DocVectors], labels: Any) -> None:
        actions = []
        for doc, label in zip(page, labels, strict=True):
            if doc.seq_no is None or doc.primary_term is None:
                why = "the scan returned no _seq_no: not written (a change could be lost)"
                self.failures.append((doc.id, why))
            else:
                actions.append(self._action(doc, int(label)))
        if self.sparse is not None and actions:  # the leg's vectors, made as the indexer does
            assert self.contract.sparse is not None
            vectors = self.sparse.encode_documents([self._text(a["_source"]) for a in actions])
            for action, vector in zip(actions, vectors, strict=True):
                action["_source"][self.contract.sparse.field] = escape_vector(vector)
        for ok, item in helpers.streaming_bulk(self.es, actions, raise_on_error=False,
                                               max_retries=3):  # fmt: skip
            outcome = parse_bulk_item(ok, item)
            if outcome.ok:
                self.written += 1
            elif _status(item) == VERSION_CONFLICT:
                self.conflicts.append(outcome.doc_id)
            else:
                self.failures.append((outcome.doc_id, outcome.reason))

    def _action(self, doc: DocVectors, label: int) -> dict[str, Any]:
        source = {**doc.source, str(self.field): label}
        if self.contract.nested:
            source[PASSAGES_FIELD] = [
                {"text": text, self.contract.vector_field: vector.tolist()}
                for text, vector in zip(doc.passages, doc.vectors, strict=True)
            ]
        else:
            source[self.contract.vector_field] = doc.vectors[0].tolist()
        # back where it was read: an alias over several indices takes no write of its own
        return {"_op_type": "index", "_index": doc.index or self.index, "_id": doc.id,
                "_source": source, "if_seq_no": doc.seq_no,
                "if_primary_term": doc.primary_term}  # fmt: skip

    def _text(self, source: Mapping[str, Any]) -> str:
        """The text the indexer encodes (``Document.full_text``): non-empty fields in order."""
        texts = (source.get(f) for f in self.contract.text_fields)
        return " ".join(t.strip() for t in texts if isinstance(t, str) and t.strip())

    def close(self) -> None:
        self.es.indices.refresh(index=self.index)


def _status(item: Mapping[str, Any]) -> Any:
    """The HTTP status of a bulk result item (``{"index": {..., "status": 409}}``)."""
    for op in item.values():
        return op.get("status") if isinstance(op, Mapping) else None
    return None
