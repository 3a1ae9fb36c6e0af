"""Encode a batch of document texts for an index: one vector each, or passages for chunked ones.

The thin layer between the pure chunker and the encoder; shared by both indexers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from es_semantic.indexing.actions import EncodedDoc
from es_semantic.indexing.chunking import Passage, chunk_text
from es_semantic.schema.contract import MAX_PASSAGES, IndexContract
from es_semantic.types import Document

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.sparse import SparseEncoder


def passage_sizes(encoder: Encoder, contract: IndexContract) -> tuple[int, int]:
    """Passage length and overlap in text tokens, within the encoder's window."""
    size = min(contract.chunk_tokens, encoder.passage_budget())
    return size, min(contract.chunk_overlap, size // 2)


def split_passages(
    encoder: Encoder, texts: Sequence[str], contract: IndexContract
) -> list[tuple[list[Passage], bool]]:
    """Each text's passages (at most MAX_PASSAGES) and whether any had to be dropped."""
    size, overlap = passage_sizes(encoder, contract)
    out = []
    for text, spans in zip(texts, encoder.token_spans(texts), strict=True):
        passages = chunk_text(text, spans, size, overlap) or [Passage(text, 0, len(text), 0)]
        out.append((passages[:MAX_PASSAGES], len(passages) > MAX_PASSAGES))
    return out


def encode_texts(
    encoder: Encoder,
    texts: Sequence[str],
    contract: IndexContract,
    sparse_encoder: SparseEncoder | None = None,
) -> list[EncodedDoc]:
    """Vectors for documents' texts as the index's contract wants them; with a sparse leg,
    each document's sparse vector too: the whole text in the sparse model's window, chunked
    index or not (measured on SciFact: better than pooling its passages' vectors)."""
    if contract.sparse is not None and sparse_encoder is None:
        raise ValueError("this index has a sparse leg: a sparse encoder is needed")
    sparse = sparse_encoder.encode_documents(texts) if contract.sparse and sparse_encoder else None
    if not contract.nested:
        embedded = encoder.embed(texts, kind="document")
        return [
            EncodedDoc(vector=v, truncated=bool(t), sparse=sparse[i] if sparse else None)
            for i, (v, t) in enumerate(zip(embedded.vectors, embedded.truncated, strict=True))
        ]
    split = split_passages(encoder, texts, contract)
    flat = [p.text for passages, _ in split for p in passages]
    embedded = encoder.embed(flat, kind="document")
    out, i = [], 0
    for row, (passages, dropped) in enumerate(split):
        n = len(passages)
        vectors, cut = embedded.vectors[i : i + n], bool(embedded.truncated[i : i + n].any())
        out.append(
            EncodedDoc(
                passages=[(p.text, v) for p, v in zip(passages, vectors, strict=True)],
                truncated=dropped or cut,
                sparse=sparse[row] if sparse is not None else None,
            )
        )
        i += n
    return out


def encode_documents(
    encoder: Any,
    docs: Sequence[Document],
    contract: IndexContract,
    sparse_encoder: SparseEncoder | None = None,
) -> list[EncodedDoc]:
    """Vectors for documents as the index's contract wants them: an image index's from each
    document's image bytes (a CLIP ``ImageEncoder``), any other's from its text."""
    if not contract.images:
        return encode_texts(encoder, [d.full_text() for d in docs], contract, sparse_encoder)
    if not hasattr(encoder, "encode_image_bytes"):
        raise ValueError("this index holds images: an image encoder (a CLIP model) is needed")
    field = contract.image_field or ""
    names = [str(d.metadata.get(field) or d.origin) for d in docs]
    missing = [n for n, d in zip(names, docs, strict=True) if d.image is None]
    if missing:
        raise ValueError(f"document {missing[0]!r} has no image for this image index")
    vectors = encoder.encode_image_bytes([d.image for d in docs], names)
    return [EncodedDoc(vector=v) for v in vectors]
