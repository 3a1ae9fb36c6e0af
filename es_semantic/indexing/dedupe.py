"""Near-duplicates at ingest: is a new document's nearest neighbour at or above a threshold?

Two places can hold that neighbour: the index as it was when the run started (one kNN probe
per vector, in one ``_msearch`` per batch, the threshold as kNN's ``similarity`` cut-off), and
the documents this run indexed already (kept in memory, compared exactly: they may not be
searchable yet). A document with passages compares by its best passage pair. Pure but for the
probe steps. The probe (:func:`probe_body`, :func:`neighbour_steps`, :func:`neighbours`) is
also the duplicates scan's (:mod:`es_semantic.corpus.duplicates`).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import numpy.typing as npt

from es_semantic.elastic.calls import Call, Steps
from es_semantic.errors import SearchError
from es_semantic.indexing.actions import EncodedDoc
from es_semantic.indexing.batch import IndexRun, Prepared
from es_semantic.indexing.options import DUPLICATE_FIELD, DedupeMode
from es_semantic.schema.contract import PASSAGES_FIELD, IndexContract
from es_semantic.schema.similarity import knn_threshold, pairwise, raw_similarity


@dataclass(frozen=True)
class Match:
    """The nearest earlier document at or above the threshold."""

    of: str
    score: float


def vectors_of(encoded: EncodedDoc) -> npt.NDArray[np.float32]:
    """A document's vectors as rows: one, or one per passage."""
    if encoded.vector is not None:
        return encoded.vector.reshape(1, -1)
    return np.stack([v for _, v in encoded.passages]).astype(np.float32)


class RunMemory:
    """The vectors of the documents this run has accepted, to compare new ones against."""

    def __init__(self, similarity: str) -> None:
        self.similarity = similarity
        self._rows: list[npt.NDArray[np.float32]] = []
        self._owners: list[str] = []
        self._matrix: npt.NDArray[np.float32] | None = None

    def nearest(self, vectors: npt.NDArray[np.float32]) -> Match | None:
        if not self._owners:
            return None
        if self._matrix is None:
            self._matrix = np.concatenate(self._rows)
        scores = pairwise(vectors, self._matrix, self.similarity).max(axis=0)
        best = int(np.argmax(scores))
        return Match(self._owners[best], float(scores[best]))

    def add(self, doc_id: str, vectors: npt.NDArray[np.float32]) -> None:
        self._rows.append(vectors)
        self._owners += [doc_id] * len(vectors)
        self._matrix = None


def probe_body(
    vector: Sequence[float],
    contract: IndexContract,
    *,
    exclude_id: str,
    threshold: float,
    top_k: int = 1,
    filters: Sequence[Mapping[str, Any]] = (),
    text_fields: Sequence[str] = (),
) -> dict[str, Any]:
    """One kNN search for a document's (or one passage's) neighbours at or above ``threshold``
    (kNN's own ``similarity`` cut-off, in the kNN unit), the document itself left out.
    ``text_fields``: returned with each hit, and then on chunked indices each hit names its
    best passage; none: ids only."""
    knn: dict[str, Any] = {
        "field": contract.vector_path,
        "query_vector": list(vector),
        "k": top_k,
        "num_candidates": max(100, 10 * top_k),
        "similarity": knn_threshold(threshold, contract.similarity),
        "filter": [*filters, {"bool": {"must_not": [{"ids": {"values": [exclude_id]}}]}}],
    }
    if contract.nested and text_fields:
        knn["inner_hits"] = {"size": 1, "_source": False, "fields": [f"{PASSAGES_FIELD}.text"]}
    return {"knn": knn, "size": top_k, "_source": list(text_fields) or False}


def neighbour_steps(index: str, bodies: Sequence[Mapping[str, Any]]) -> Steps[list[Any]]:
    """The answers to ``bodies`` (:func:`probe_body`), one ``_msearch``; a failed probe raises."""
    if not bodies:
        return []
    lines = [line for body in bodies for line in ({"index": index}, body)]
    responses = (yield Call("msearch", {"searches": lines})).raise_for_error()["responses"]
    for response in responses:
        if "error" in response:
            raise SearchError(f"a duplicate probe on {index!r} failed: {response['error']}")
    return list(responses)


def neighbours(
    response: Mapping[str, Any], contract: IndexContract, threshold: float
) -> Iterator[tuple[dict[str, Any], float]]:
    """A probe's hits at or above ``threshold``, each with its score in the raw unit."""
    for hit in response.get("hits", {}).get("hits", []):
        score = raw_similarity(float(hit.get("_score") or 0.0), contract.similarity)
        if score >= threshold - 1e-6:
            yield hit, score


def probe_steps(
    index: str,
    contract: IndexContract,
    items: Sequence[tuple[str, npt.NDArray[np.float32]]],
    threshold: float,
) -> Steps[list[Match | None]]:
    """Each document's nearest neighbour in ``index`` at or above ``threshold`` (itself left
    out), one ``_msearch`` for all their vectors."""
    owners = [position for position, (_, vectors) in enumerate(items) for _ in vectors]
    bodies = [probe_body(vector.tolist(), contract, exclude_id=doc_id, threshold=threshold)
              for doc_id, vectors in items for vector in vectors]  # fmt: skip
    found: list[Match | None] = [None] * len(items)
    responses = yield from neighbour_steps(index, bodies)
    for position, response in zip(owners, responses, strict=True):
        for hit, score in neighbours(response, contract, threshold):
            current = found[position]
            if current is None or score > current.score:
                found[position] = Match(str(hit["_id"]), score)
    return found


def decide(
    ids: Sequence[str],
    vectors: Sequence[npt.NDArray[np.float32]],
    in_index: Sequence[Match | None],
    memory: RunMemory,
    threshold: float,
    mode: DedupeMode,
) -> list[Match | None]:
    """Each document's verdict, in input order: the better of its match in the index and in
    this run (earlier documents, the batch included). Documents that will be indexed (all when
    flagging, the originals when skipping) join the memory."""
    verdicts: list[Match | None] = []
    for doc_id, rows, indexed in zip(ids, vectors, in_index, strict=True):
        candidates = [m for m in (indexed, memory.nearest(rows)) if m is not None]
        candidates = [m for m in candidates if m.score >= threshold - 1e-6 and m.of != doc_id]
        best = max(candidates, key=lambda m: m.score) if candidates else None
        verdicts.append(best)
        if best is None or mode == "flag":
            memory.add(doc_id, rows)
    return verdicts


def apply_verdicts(
    todo: Sequence[Prepared],
    encoded: Sequence[EncodedDoc],
    verdicts: Sequence[Match | None],
    stored: set[str],
    mode: DedupeMode,
    run: IndexRun,
) -> list[tuple[Prepared, EncodedDoc]]:
    """The documents to write, each near-duplicate counted in ``run``: flagged (written with
    ``duplicate_of``), skipped (left out), or ``updated`` — an id the index holds is written
    even when skipping, since leaving it out would keep its stale version."""
    kept: list[tuple[Prepared, EncodedDoc]] = []
    for prepared, vector, match in zip(todo, encoded, verdicts, strict=True):
        if match is not None:
            action = "flagged" if mode == "flag" else "skipped"
            if action == "skipped" and prepared.doc_id in stored:
                action = "updated"
            run.near_duplicate(prepared, match.of, match.score, action)
            if action == "skipped":
                continue
            if action == "flagged":
                metadata = {**prepared.doc.metadata, DUPLICATE_FIELD: match.of}
                prepared = replace(prepared, doc=replace(prepared.doc, metadata=metadata))
        kept.append((prepared, vector))
    return kept
