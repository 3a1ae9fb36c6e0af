"""No I/O: documents -> ids, content hashes and bulk actions; bulk results -> outcomes."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from es_semantic.schema.contract import PASSAGES_FIELD, IndexContract, escape_vector
from es_semantic.types import Document


def content_hash(doc: Document, contract: IndexContract) -> str:
    """sha256 over what decides the stored document and its vector: texts, metadata, model.

    Equal hashes mean a re-run can skip the document without encoding it.
    """
    payload: dict[str, Any] = {
        "texts": dict(doc.texts),
        "metadata": dict(doc.metadata),
        "model": contract.model_fingerprint,
        "prefix": contract.document_prefix,
        "pooling": contract.pooling,
        "max_length": contract.max_length,
    }
    if contract.nested:
        payload["chunking"] = [contract.chunk_tokens, contract.chunk_overlap]
    if contract.sparse is not None:  # an index with a sparse leg: its model decides it too
        payload["sparse"] = contract.sparse.model_fingerprint
    if doc.image is not None:  # an image: its bytes decide its vector
        payload["image"] = hashlib.sha256(doc.image).hexdigest()
    data = json.dumps(payload, sort_keys=True, ensure_ascii=False).encode("utf-8")
    return hashlib.sha256(data).hexdigest()


def document_id(doc: Document, digest: str) -> str:
    """The given id, else the content hash (so a re-run finds the same document)."""
    return doc.id if doc.id is not None else digest[:32]


@dataclass(frozen=True)
class EncodedDoc:
    """A document's vectors: one for the whole text, or one per passage (chunked indices)."""

    vector: npt.NDArray[np.float32] | None = None
    passages: Sequence[tuple[str, npt.NDArray[np.float32]]] = ()
    truncated: bool = False  # text was cut: at max_length, or passages beyond MAX_PASSAGES
    sparse: Mapping[str, float] | None = None  # the sparse leg's {token: weight}, if any

    @property
    def chunked(self) -> bool:
        return len(self.passages) > 1


VectorFormat = Literal["json", "base64"]


def pack_vector(vector: npt.NDArray[np.float32]) -> str:
    """A vector as Elasticsearch 9.3+ accepts it in place of a JSON array: base64 of its
    big-endian IEEE-754 float32 bytes (a third of the JSON's size, no float parsing)."""
    return base64.b64encode(np.asarray(vector, dtype=">f4").tobytes()).decode("ascii")


def unpack_vector(packed: str) -> npt.NDArray[np.float32]:
    """The inverse of :func:`pack_vector`."""
    return np.frombuffer(base64.b64decode(packed), dtype=">f4").astype(np.float32)


def vector_value(vector: npt.NDArray[np.float32], form: VectorFormat) -> Any:
    return pack_vector(vector) if form == "base64" else vector.tolist()


def to_action(
    index: str,
    doc_id: str,
    doc: Document,
    digest: str,
    encoded: EncodedDoc | npt.NDArray[np.float32],
    contract: IndexContract,
    vector_format: VectorFormat = "json",
) -> dict[str, Any]:
    """A bulk ``index`` action: metadata is ``_op_type``/``_index``/``_id`` only."""
    if not isinstance(encoded, EncodedDoc):
        encoded = EncodedDoc(vector=encoded)
    source: dict[str, Any] = {name: text for name, text in doc.texts.items()}
    source.update(doc.metadata)
    source["content_hash"] = digest
    if encoded.vector is not None:
        source[contract.vector_field] = vector_value(encoded.vector, vector_format)
    else:
        source[PASSAGES_FIELD] = [
            {"text": text, contract.vector_field: vector_value(vector, vector_format)}
            for text, vector in encoded.passages
        ]
    if contract.sparse is not None:
        if encoded.sparse is None:
            raise ValueError(f"document {doc_id!r} has no sparse vector for the sparse leg")
        source[contract.sparse.field] = escape_vector(encoded.sparse)
    return {"_op_type": "index", "_index": index, "_id": doc_id, "_source": source}


@dataclass(frozen=True)
class BulkOutcome:
    """One bulk item's result."""

    doc_id: str
    ok: bool
    reason: str = ""


def parse_bulk_item(ok: bool, item: Mapping[str, Any]) -> BulkOutcome:
    """Read a ``streaming_bulk`` result item into a BulkOutcome with a readable reason."""
    op = next(iter(item.values())) if item else {}
    doc_id = str(op.get("_id", ""))
    if ok:
        return BulkOutcome(doc_id, True)
    error = op.get("error", op.get("exception", "unknown error"))
    if isinstance(error, Mapping):
        reason = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        caused = error.get("caused_by")
        if isinstance(caused, Mapping) and caused.get("reason"):
            reason += f" (caused by {caused.get('type')}: {caused.get('reason')})"
    else:
        reason = str(error)
    status = op.get("status")
    return BulkOutcome(doc_id, False, f"HTTP {status} {reason}" if status else reason)


def stored_ids(
    wanted: Mapping[str, str], mget_docs: Sequence[Mapping[str, Any]]
) -> tuple[set[str], set[str]]:
    """From an ``mget`` response: the ids stored with the wanted ``content_hash`` (unchanged)
    and every id stored at all (an indexed document with another hash is an update)."""
    same: set[str] = set()
    found: set[str] = set()
    for entry in mget_docs:
        if not entry.get("found"):
            continue
        stored = (entry.get("_source") or {}).get("content_hash")
        doc_id = str(entry.get("_id"))
        found.add(doc_id)
        if stored is not None and wanted.get(doc_id) == stored:
            same.add(doc_id)
    return same, found
