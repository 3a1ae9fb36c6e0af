"""Every document of an index with its vectors, a page at a time, through a point in time.

Where the vectors come from, chosen by what Elasticsearch 8.x and 9.x both support:
- one vector per document: ``script_fields`` reading the ``dense_vector`` doc values
  (``doc['embedding'].vectorValue``, Painless over the contract's validated field name), so
  nothing is re-encoded and nothing relies on vectors in ``_source`` (excluded by the mapping,
  and left out by default from 9.2);
- passages (chunked indices): the stored passage texts re-encoded with the index's model,
  since nested doc values cannot be read from the parent document's hit.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt
from elasticsearch import Elasticsearch

from es_semantic.errors import ConfigError
from es_semantic.indexing.pit import pit_pages
from es_semantic.schema.contract import PASSAGES_FIELD, IndexContract
from es_semantic.schema.similarity import unit_rows
from es_semantic.search.queries import checked_field_name

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder

VECTOR_SCRIPT_FIELD = "_es_semantic_vector"


@dataclass(frozen=True)
class DocVectors:
    """A stored document, its ``_source`` (vectors excluded) and its vectors as rows (one, or
    one per passage, with the passages' texts); ``seq_no``/``primary_term``: the version the
    scan read, for a write-back guarded by optimistic concurrency control."""

    id: str
    source: dict[str, Any]
    vectors: npt.NDArray[np.float32]
    passages: Sequence[str] = ()
    seq_no: int | None = None
    primary_term: int | None = None
    index: str = ""  # the concrete index it was read from (a write-back goes there)

    def mean_vector(self) -> npt.NDArray[np.float32]:
        """One vector for the document (the unit mean of its passages)."""
        mean = self.vectors.mean(axis=0, keepdims=True).astype(np.float32)
        result: npt.NDArray[np.float32] = unit_rows(mean)[0]
        return result


def scan_query(contract: IndexContract, filters: list[dict[str, Any]]) -> dict[str, Any]:
    """The documents that have vectors (and match ``filters``)."""
    has_vector = (
        {"nested": {"path": PASSAGES_FIELD, "query": {"exists": {"field": contract.vector_path}}}}
        if contract.nested
        else {"exists": {"field": contract.vector_path}}
    )
    return {"bool": {"filter": [*filters, has_vector]}}


def vector_pages(
    es: Elasticsearch,
    index: str,
    contract: IndexContract,
    *,
    filters: list[dict[str, Any]],
    encoder: Encoder | None,
    page_size: int,
    source: Sequence[str] | None = None,
    pinned: Sequence[str] | None = None,
) -> Iterator[list[DocVectors]]:
    """Pages of documents with their vectors. ``source``: the ``_source`` fields to return
    (None: all of it); ``pinned``: the concrete indices the run read the contract from (a
    hit from another means the alias moved: refused before the page is handed on)."""
    if contract.nested and encoder is None:
        raise ConfigError(
            f"index {index!r} holds passages: pass its model (--model) to re-encode them"
        )
    if contract.nested and encoder is not None:  # vectors re-encoded: only with the index's model
        contract.check(encoder.config, index)
    extra: dict[str, Any] = {}
    if not contract.nested:
        field = checked_field_name(contract.vector_field)
        script = {"source": f"doc['{field}'].vectorValue"}
        extra["script_fields"] = {VECTOR_SCRIPT_FIELD: {"script": script}}
    if source is not None:
        wanted = [*source, *([f"{PASSAGES_FIELD}.text"] if contract.nested else [])]
        extra["source_includes"] = wanted
    else:
        extra["source"] = True  # asked for: with script_fields some servers leave it out
    query = scan_query(contract, filters)
    with closing(pit_pages(es, index, page_size=page_size, query=query,
                           seq_no_primary_term=True, **extra)) as pages:  # fmt: skip
        for hits in pages:
            _check_pinned(index, hits, pinned)
            yield _page_vectors(hits, contract, encoder)


def _check_pinned(index: str, hits: Sequence[dict[str, Any]], pinned: Sequence[str] | None) -> (
        None):  # fmt: skip
    moved = sorted({str(h.get("_index")) for h in hits} - set(pinned or ())) if pinned else []
    if moved:
        raise ConfigError(
            f"{index!r} moved to {', '.join(moved[:3])} during the run (it began on "
            f"{', '.join(pinned[:3]) if pinned else ''}; migrate swaps aliases): nothing was "
            "written from this pass; re-run against the index as it is now"
        )


def _page_vectors(
    hits: Sequence[dict[str, Any]], contract: IndexContract, encoder: Encoder | None
) -> list[DocVectors]:
    """The page's documents with vectors (passages encoded in one call per page)."""
    if not contract.nested:
        docs = []
        for hit in hits:
            vector = (hit.get("fields") or {}).get(VECTOR_SCRIPT_FIELD)
            if vector:
                rows = np.asarray([vector], dtype=np.float32)
                docs.append(_doc(hit, rows))
        return docs
    assert encoder is not None
    passages: list[tuple[dict[str, Any], list[str]]] = []
    for hit in hits:
        source = dict(hit.get("_source") or {})
        texts = [str(p.get("text", "")) for p in source.get(PASSAGES_FIELD) or []]
        passages.append((hit, [t for t in texts if t.strip()]))
    flat = [t for _, texts in passages for t in texts]
    vectors = encoder.encode_documents(flat) if flat else np.zeros((0, 0), dtype=np.float32)
    docs, start = [], 0
    for hit, texts in passages:
        if texts:
            docs.append(_doc(hit, vectors[start : start + len(texts)], texts))
        start += len(texts)
    return docs


def _doc(
    hit: dict[str, Any], rows: npt.NDArray[np.float32], texts: Sequence[str] = ()
) -> DocVectors:
    seq_no, term = hit.get("_seq_no"), hit.get("_primary_term")
    return DocVectors(str(hit["_id"]), dict(hit.get("_source") or {}), rows, texts,
                      None if seq_no is None else int(seq_no),
                      None if term is None else int(term),
                      str(hit.get("_index") or ""))  # fmt: skip
