"""A search hit as a framework document: the matched passage as content; the source fields,
the id and each leg's score and rank as metadata (pure)."""

from __future__ import annotations

from typing import Any

from es_semantic.schema.contract import IndexContract
from es_semantic.search.core import passage_text
from es_semantic.types import Hit


def hit_content(hit: Hit, contract: IndexContract) -> str:
    """The passage that matched (chunked indices), else the document's text fields."""
    return hit.passage or passage_text(hit.source, contract.text_fields)


def hit_metadata(hit: Hit, index: str) -> dict[str, Any]:
    """The source fields, then ``id``, ``index``, ``score``, ``scores`` (per leg, fusion,
    rerank) and ``ranks`` (per leg)."""
    return {
        **hit.source,
        "id": hit.id,
        "index": index,
        "score": hit.score,
        "scores": dict(hit.scores),
        "ranks": dict(hit.ranks),
    }
