"""Training pairs from an index: hard negatives for query pairs (the keyword and kNN legs of the
Searcher, positives excluded), and self-supervised (anchor field, positive field) pairs from the
user's own documents."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from elasticsearch import helpers

from es_semantic.errors import InputError
from es_semantic.training.data import PairSet
from es_semantic.types import Hit

if TYPE_CHECKING:
    from elasticsearch import Elasticsearch

    from es_semantic.search.searcher import Searcher


def hit_text(hit: Hit, fields: Iterable[str]) -> str:
    """A hit's text as the index holds it: its text fields joined (title, then text)."""
    return " ".join(str(hit.source[f]).strip() for f in fields if hit.source.get(f)).strip()


def _same(a: str, b: str) -> bool:
    return " ".join(a.lower().split()) == " ".join(b.lower().split())


def mine_hard_negatives(
    searcher: Searcher, pairs: PairSet, *, per_query: int = 3, depth: int = 10
) -> PairSet:
    """For each (query, positive): the best keyword and kNN hits that are not a positive of that
    query (by text, or by any of its fields), alternating legs; rows keep their given negatives."""
    fields = searcher.contract().text_fields
    positives: dict[str, set[str]] = {}
    for query, positive in zip(pairs.first, pairs.second, strict=True):
        positives.setdefault(query, set()).add(positive)
    negatives: list[list[str]] = []
    for i, query in enumerate(pairs.first):
        legs = [searcher.search(query, mode=mode, k=depth).hits for mode in ("keyword", "knn")]
        found = list(pairs.negatives[i]) if pairs.negatives else []
        wanted = len(found) + per_query
        for rank in range(depth):
            for hits in legs:
                if rank >= len(hits) or len(found) >= wanted:
                    continue
                hit = hits[rank]
                text = hit_text(hit, fields)
                parts = [str(hit.source.get(f, "")) for f in fields] + [text]
                if not text or any(_same(p, pos) for p in parts for pos in positives[query]):
                    continue  # a positive: never a negative
                if all(not _same(text, f) for f in found):
                    found.append(text)
        negatives.append(found)
    return PairSet("queries", list(pairs.first), list(pairs.second), [], negatives, pairs.source)


def pairs_from_index(
    es: Elasticsearch, index: str, anchor_field: str, positive_field: str, limit: int = 100_000
) -> PairSet:
    """(anchor, positive) pairs from the documents of ``index`` that have both fields."""
    first: list[str] = []
    second: list[str] = []
    query: dict[str, Any] = {"query": {"bool": {"filter": [
        {"exists": {"field": anchor_field}}, {"exists": {"field": positive_field}}]}}}  # fmt: skip
    for doc in helpers.scan(es, index=index, query=query, _source=[anchor_field, positive_field],
                            size=500, preserve_order=True):  # fmt: skip
        source = doc.get("_source") or {}
        anchor, positive = source.get(anchor_field), source.get(positive_field)
        if _filled(anchor) and _filled(positive):
            first.append(str(anchor).strip())
            second.append(str(positive).strip())
        if len(first) >= limit:
            break
    if len(first) < 10:
        raise InputError(
            f"index {index!r} has {len(first)} documents with both {anchor_field!r} and "
            f"{positive_field!r}: too few to train on (pick fields every document has)"
        )
    return PairSet("queries", first, second, [], [], f"index {index} ({anchor_field} -> "
                   f"{positive_field})")  # fmt: skip


def _filled(value: Any) -> bool:
    return isinstance(value, str) and bool(value.strip())
