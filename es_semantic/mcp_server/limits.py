"""The MCP tools' caps, argument checks and result shapes (pure: no I/O, no MCP import).

Every input is capped (query length, k, filter count and sizes, id length) and every result
is bounded (hits, characters per text): an agent gets one sentence naming the cap it crossed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from es_semantic.errors import InputError, check_unicode
from es_semantic.schema.contract import IndexContract
from es_semantic.search.core import passage_text
from es_semantic.types import Hit, SearchResult

NUMERIC_TYPES = ("long", "integer", "double", "float", "date")
RANGE_KEYS = ("gte", "gt", "lte", "lt")


@dataclass(frozen=True)
class McpLimits:
    """Caps on every tool input and result."""

    max_query_chars: int = 1_000
    max_k: int = 50
    max_filters: int = 16  # fields per filter object
    max_filter_values: int = 64  # values in one field's list
    max_value_chars: int = 256  # characters of one filter value
    max_id_chars: int = 512
    max_text_chars: int = 2_000  # per text (passage, document field)
    snippet_chars: int = 300
    title_chars: int = 200
    rerank_top: int = 50  # rerank pool
    explain_window: int = 100  # how deep `explain` looks for the document
    top_values: int = 20  # metadata values list_indices shows per field
    max_concurrent: int = 16  # tool calls in flight; beyond: "busy, retry"


def check_index(index: str, allowed: Sequence[str]) -> str:
    """The index, if it is on the allow-list (exact names)."""
    if index not in allowed:
        raise InputError(
            f"index {clip(index, 100)!r} is not served here: use one of {', '.join(allowed)} "
            "(list_indices describes them)"
        )
    return index


def check_query(query: str, limits: McpLimits) -> str:
    if len(query) > limits.max_query_chars:
        raise InputError(
            f"query has {len(query)} characters; the limit is {limits.max_query_chars}: "
            "shorten it to the words that matter"
        )
    return check_unicode(query, "query")


def check_k(k: int, limits: McpLimits) -> int:
    if not 1 <= k <= limits.max_k:
        raise InputError(f"k={k} must be from 1 to {limits.max_k}")
    return k


def check_id(doc_id: str, limits: McpLimits) -> str:
    if not doc_id or len(doc_id) > limits.max_id_chars:
        raise InputError(f"id must be 1 to {limits.max_id_chars} characters (an id from search)")
    return check_unicode(doc_id, "id")


def check_filters(filters: Mapping[str, Any] | None, limits: McpLimits) -> dict[str, Any] | None:
    """The filters, within the caps: ``{field: value | [values] | {gte, gt, lte, lt}}``
    (the fields themselves are checked against the index's metadata fields when searching)."""
    if not filters:
        return None
    if len(filters) > limits.max_filters:
        raise InputError(f"{len(filters)} filter fields; the limit is {limits.max_filters}")
    out: dict[str, Any] = {}
    for field, value in filters.items():
        if len(field) > limits.max_value_chars:
            raise InputError(
                f"a filter field name has {len(field)} characters; the limit is "
                f"{limits.max_value_chars} (list_indices names the fields)"
            )
        check_unicode(field, "a filter field name")
        if isinstance(value, Mapping):
            bounds = {k: v for k, v in value.items() if v is not None}
            unknown = sorted(set(bounds) - set(RANGE_KEYS))
            if unknown or not bounds:
                raise InputError(
                    f"range filter on {field!r} takes gte, gt, lte, lt; got {unknown or 'none'}"
                )
            values: list[Any] = list(bounds.values())
            out[field] = bounds
        elif isinstance(value, list | tuple):
            if not value or len(value) > limits.max_filter_values:
                raise InputError(
                    f"filter on {field!r} needs 1 to {limits.max_filter_values} values"
                )
            values = list(value)
            out[field] = values
        else:
            values = [value]
            out[field] = value
        for item in values:
            if isinstance(item, str) and len(item) > limits.max_value_chars:
                raise InputError(
                    f"a value of filter {field!r} has {len(item)} characters; the limit is "
                    f"{limits.max_value_chars}"
                )
            if isinstance(item, str):
                check_unicode(item, f"a value of filter {field!r}")
    return out


def argument_hints(limits: McpLimits, indices: Sequence[str]) -> dict[str, str]:
    """What each tool argument takes, for a refused argument's one sentence."""
    return {
        "query": f"query is plain text of 1 to {limits.max_query_chars} characters",
        "index": f"index is one of {', '.join(indices)}",
        "mode": "mode is keyword, knn or hybrid",
        "k": f"k is a whole number from 1 to {limits.max_k}",
        "filters": "filters is {field: value}, {field: [values]} or {field: {gte, gt, lte, "
        "lt}} with plain values (list_indices names the fields)",
        "rerank": "rerank is true or false",
        "id": f"id is 1 to {limits.max_id_chars} characters (an id from search)",
    }


def argument_error(tool: str, errors: Sequence[Mapping[str, Any]], hints: Mapping[str, str]) -> str:
    """One sentence for arguments that failed the tool's schema (pydantic's errors, one per
    union member, would be a page): the arguments named, each with what it takes."""
    names = list(dict.fromkeys(str(e["loc"][0])[:40] for e in errors if e.get("loc")))
    if not names:
        return f"{tool}: wrong arguments: an object of the tool's input schema is expected"
    missing = {str(e["loc"][0]) for e in errors if e.get("loc") and e.get("type") == "missing"}
    parts = [("missing: " if n in missing else "") + hints.get(n, f"{n} is not an argument of "
             f"{tool}") for n in names[:8]]  # fmt: skip
    return f"{tool}: wrong arguments ({', '.join(names[:8])}): {'; '.join(parts)}"


def clip(text: str | None, limit: int) -> str | None:
    """``text`` cut to ``limit`` characters (an ellipsis marks the cut)."""
    if text is None or len(text) <= limit:
        return text
    return text[: max(limit - 1, 0)].rstrip() + "…"


def clip_value(value: Any, limits: McpLimits, depth: int = 0) -> Any:
    """A metadata value as a result shows it: strings clipped to ``max_value_chars``, lists
    to ``max_filter_values`` items, objects to ``max_filters`` keys, three levels deep."""
    if isinstance(value, str):
        return clip(value, limits.max_value_chars)
    if value is None or isinstance(value, bool | int | float):
        return value
    if depth >= 3:
        return clip(str(value), limits.max_value_chars)
    if isinstance(value, list | tuple):
        return [clip_value(v, limits, depth + 1) for v in value[: limits.max_filter_values]]
    if isinstance(value, Mapping):
        items = list(value.items())[: limits.max_filters]
        return {clip(str(k), limits.max_value_chars): clip_value(v, limits, depth + 1)
                for k, v in items}  # fmt: skip
    return clip(str(value), limits.max_value_chars)


def metadata_json(source: Mapping[str, Any], contract: IndexContract, limits: McpLimits) -> Any:
    """The contract's metadata fields of ``source``, each value within the caps."""
    return {k: clip_value(source[k], limits) for k in contract.metadata_fields if k in source}


def hit_json(hit: Hit, contract: IndexContract, limits: McpLimits) -> dict[str, Any]:
    """One hit as a tool returns it: id, score, title, snippet, the matched passage, its
    metadata, and each leg's rank and score."""
    source = hit.source
    passage = hit.passage or passage_text(source, contract.text_fields)
    title = source.get("title") if isinstance(source.get("title"), str) else None
    return {
        "id": hit.id,
        "score": round(hit.score, 6),
        "title": clip(title, limits.title_chars),
        "snippet": clip(passage, limits.snippet_chars),
        "passage": clip(passage, limits.max_text_chars),
        "metadata": metadata_json(source, contract, limits),
        "ranks": dict(hit.ranks),
        "scores": {k: round(v, 6) for k, v in hit.scores.items()},
    }


def result_json(
    index: str, result: SearchResult, contract: IndexContract, limits: McpLimits
) -> dict[str, Any]:
    return {
        "index": index,
        "mode": result.mode,
        "fusion": result.fusion,
        "reranked": result.reranked,
        "hits": [hit_json(h, contract, limits) for h in result.hits],
        "warnings": list(result.warnings),
    }


def document_json(
    index: str, raw: Mapping[str, Any], contract: IndexContract, limits: McpLimits
) -> dict[str, Any]:
    """A stored document: its text fields (clipped) and metadata; never vectors or passages."""
    source = raw.get("_source") or {}
    texts = {
        name: clip(source[name], limits.max_text_chars)
        for name in contract.text_fields
        if isinstance(source.get(name), str)
    }
    metadata = metadata_json(source, contract, limits)
    return {"index": index, "id": str(raw.get("_id")), "texts": texts, "metadata": metadata}


def value_aggregations(contract: IndexContract, limits: McpLimits) -> dict[str, Any]:
    """Aggregations that show an agent each metadata field's values: the most frequent ones
    (keyword, boolean), or the range (numbers, dates)."""
    aggs: dict[str, Any] = {}
    for name, kind in contract.metadata_fields.items():
        if kind in ("keyword", "boolean"):
            aggs[f"values:{name}"] = {"terms": {"field": name, "size": limits.top_values}}
        elif kind in NUMERIC_TYPES:
            aggs[f"min:{name}"] = {"min": {"field": name}}
            aggs[f"max:{name}"] = {"max": {"field": name}}
    return aggs


def index_json(
    index: str, contract: IndexContract, response: Mapping[str, Any], limits: McpLimits
) -> dict[str, Any]:
    """An index as list_indices describes it: its contract and its metadata fields' values."""
    aggs = response.get("aggregations") or {}
    fields: dict[str, Any] = {}
    for name, kind in contract.metadata_fields.items():
        entry: dict[str, Any] = {"type": kind}
        if f"values:{name}" in aggs:
            buckets = aggs[f"values:{name}"].get("buckets") or []
            entry["values"] = [clip_value(b.get("key_as_string", b.get("key")), limits)
                               for b in buckets]  # fmt: skip
        if f"min:{name}" in aggs:
            low, high = aggs[f"min:{name}"], aggs[f"max:{name}"]
            entry["min"] = low.get("value_as_string", low.get("value"))
            entry["max"] = high.get("value_as_string", high.get("value"))
        fields[name] = entry
    total = (response.get("hits") or {}).get("total")
    layout = (
        f"passages of {contract.chunk_tokens} tokens (overlap {contract.chunk_overlap}); a hit "
        "carries its best-matching passage"
        if contract.nested
        else "one vector per document"
    )
    return {
        "index": index,
        "documents": total.get("value") if isinstance(total, Mapping) else total,
        "model": contract.model_name,
        "dims": contract.dims,
        "similarity": contract.similarity,
        "layout": layout,
        "text_fields": list(contract.text_fields),
        "metadata_fields": fields,
    }


def explanation(
    doc_id: str, result: SearchResult, window: int, legs: Sequence[str]
) -> dict[str, Any]:
    """Why ``doc_id`` ranked where it did: each leg's rank and score, the fusion, the rerank."""
    position = next((i for i, h in enumerate(result.hits) if h.id == doc_id), None)
    base = {"id": doc_id, "mode": result.mode, "fusion": result.fusion,
            "reranked": result.reranked}  # fmt: skip
    if position is None:
        return {**base, "found": False,
                "why": f"not among the first {window} results of this query in {result.mode} "
                "mode (with these filters): it matches the query less than those do"}  # fmt: skip
    hit = result.hits[position]
    per_leg = {leg: {"rank": hit.ranks.get(leg), "score": hit.scores.get(leg)} for leg in legs}
    missing = [leg for leg in legs if hit.ranks.get(leg) is None]
    parts = [f"rank {position + 1} overall"]
    parts += [f"{leg} rank {v['rank']}" for leg, v in per_leg.items() if v["rank"] is not None]
    parts += [f"absent from the {leg} leg's candidates" for leg in missing]
    if result.fusion:
        parts.append(f"fused by {result.fusion}")
    if result.reranked and "rerank" in hit.scores:
        parts.append(f"then reranked (cross-encoder score {hit.scores['rerank']:.4g})")
    return {**base, "found": True, "rank": position + 1, "score": round(hit.score, 6),
            "legs": per_leg, "scores": {k: round(v, 6) for k, v in hit.scores.items()},
            "why": "; ".join(parts)}  # fmt: skip
