"""Request bodies for keyword, kNN, exact kNN, sparse and server-side RRF searches (pure).

User text only ever goes into ``multi_match``'s ``query`` — never into query-string syntax.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from es_semantic.schema.contract import PASSAGES_FIELD, IndexContract, escape_vector

# script_score expressions that reproduce the kNN scores Elasticsearch documents per similarity.
# FIELD is the contract's vector field name (validated identifier, never user text).
EXACT_SCORE_SCRIPTS = {
    "cosine": "(cosineSimilarity(params.query_vector, 'FIELD') + 1.0) / 2.0",
    "dot_product": "(dotProduct(params.query_vector, 'FIELD') + 1.0) / 2.0",
    "l2_norm": "1.0 / (1.0 + Math.pow(l2norm(params.query_vector, 'FIELD'), 2))",
    "max_inner_product": (
        "double d = dotProduct(params.query_vector, 'FIELD'); d < 0 ? 1.0 / (1.0 - d) : d + 1.0"
    ),
}
MINMAX = {"normalizer": "minmax"}
_FIELD_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.\-]*$")


def default_num_candidates(k: int) -> int:
    """A recall-friendly candidate pool: 10x k, at least 100, at most 10,000."""
    return max(min(10 * k, 10_000), min(100, 10_000), k)


def source_spec(contract: IndexContract, includes: Sequence[str] | None) -> dict[str, Any]:
    """Hits never carry vectors; chunked documents' passages come back as inner hits only."""
    hidden = PASSAGES_FIELD if contract.nested else contract.vector_field
    spec: dict[str, Any] = {"excludes": [hidden]}
    if contract.sparse is not None:
        spec["excludes"].append(contract.sparse.field)
    if includes is not None:
        spec["includes"] = list(includes)
    return spec


def keyword_query(
    query: str, contract: IndexContract, fields: Sequence[str] | None, filters: list[dict[str, Any]]
) -> dict[str, Any]:
    """BM25 ``multi_match`` (best_fields, tie_breaker 0.5 as in BEIR) inside a bool with filters."""
    match = {
        "multi_match": {
            "query": query,
            "fields": list(fields or contract.text_fields),
            "type": "best_fields",
            "tie_breaker": 0.5,
        }
    }
    return {"bool": {"must": [match], "filter": filters}} if filters else match


def keyword_body(
    query: str,
    contract: IndexContract,
    *,
    size: int,
    offset: int = 0,
    fields: Sequence[str] | None = None,
    filters: list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = None,
    highlight: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "query": keyword_query(query, contract, fields, filters or []),
        "size": size,
        "from": offset,
        "_source": source_spec(contract, source),
        "track_total_hits": True,
    }
    if highlight:
        body["highlight"] = {
            "fields": {name: {} for name in (fields or contract.text_fields)},
            "number_of_fragments": 2,
            "fragment_size": 160,
        }
    return body


def sparse_query(
    vector: Mapping[str, float], contract: IndexContract, filters: list[dict[str, Any]]
) -> dict[str, Any]:
    """The ``sparse_vector`` query (8.15+, every licence) on the sparse leg: a dot product of
    the query's weights with each document's, feature names escaped as they were stored; the
    leg's token pruning when it asks for it. A query with no weight matches nothing."""
    leg = contract.sparse
    if leg is None:
        raise ValueError("the index has no sparse leg")
    weights = escape_vector(vector)
    if not weights:
        return {"match_none": {}}
    query: dict[str, Any] = {"field": leg.field, "query_vector": weights}
    if leg.prune:
        query["prune"] = True
        query["pruning_config"] = {
            "tokens_freq_ratio_threshold": leg.tokens_freq_ratio_threshold,
            "tokens_weight_threshold": leg.tokens_weight_threshold,
        }
    clause = {"sparse_vector": query}
    return {"bool": {"must": [clause], "filter": filters}} if filters else clause


def sparse_body(
    vector: Mapping[str, float],
    contract: IndexContract,
    *,
    size: int,
    offset: int = 0,
    filters: list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = None,
) -> dict[str, Any]:
    """The sparse leg's search: :func:`sparse_query` paged like the keyword leg."""
    return {
        "query": sparse_query(vector, contract, filters or []),
        "size": size,
        "from": offset,
        "_source": source_spec(contract, source),
        "track_total_hits": True,
    }


def best_passage_inner_hits() -> dict[str, Any]:
    """The best-matching passage of a chunked document, its text only (no vector)."""
    return {"size": 1, "_source": False, "fields": [f"{PASSAGES_FIELD}.text"]}


def knn_section(
    vector: Sequence[float],
    contract: IndexContract,
    *,
    k: int,
    num_candidates: int | None,
    filters: list[dict[str, Any]] | None,
    inner_hits: bool = True,
    oversample: float | None = None,
) -> dict[str, Any]:
    """A ``knn`` clause; on chunked indices it searches the nested passage vectors (k counts
    documents, each scored by its best passage) and returns that passage as an inner hit.

    ``oversample``: ``rescore_vector`` (8.18+): quantized indices gather ``k * oversample``
    candidates and rescore them with the float vectors."""
    section: dict[str, Any] = {
        "field": contract.vector_path,
        "query_vector": list(vector),
        "k": k,
        "num_candidates": max(num_candidates or default_num_candidates(k), k),
    }
    if filters:
        section["filter"] = filters
    if contract.nested and inner_hits:
        section["inner_hits"] = best_passage_inner_hits()
    if oversample is not None:
        section["rescore_vector"] = {"oversample": oversample}
    return section


def knn_body(
    vector: Sequence[float],
    contract: IndexContract,
    *,
    size: int,
    offset: int = 0,
    num_candidates: int | None = None,
    filters: list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = None,
    oversample: float | None = None,
) -> dict[str, Any]:
    """Top-level ``knn`` (approximate, filters as pre-filters); k covers the requested page."""
    k = offset + size
    section = knn_section(vector, contract, k=k, num_candidates=num_candidates, filters=filters,
                          oversample=oversample)  # fmt: skip
    return {
        "knn": section,
        "size": size,
        "from": offset,
        "_source": source_spec(contract, source),
    }


def checked_field_name(name: str) -> str:
    """``name`` when it is a plain field name, fit to stand quoted in a Painless script (the
    contract's own field, never user text)."""
    if not _FIELD_NAME.match(name):
        raise ValueError(f"vector field {name!r} is not a plain field name")
    return name


def exact_score_script(contract: IndexContract) -> str:
    """The Painless source scoring like kNN for the contract's similarity and field."""
    field = checked_field_name(contract.vector_path)
    return EXACT_SCORE_SCRIPTS[contract.similarity].replace("FIELD", field)


def exact_knn_body(
    vector: Sequence[float],
    contract: IndexContract,
    *,
    size: int,
    offset: int = 0,
    filters: list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Brute-force ``script_score`` over the filtered documents, scored like kNN.

    On chunked indices: a ``nested`` query scoring every passage, the best one (max) wins."""
    exists = {"exists": {"field": contract.vector_path}}
    script = {"source": exact_score_script(contract), "params": {"query_vector": list(vector)}}
    if contract.nested:
        passages = {"script_score": {"query": {"bool": {"filter": [exists]}}, "script": script}}
        nested = {
            "nested": {
                "path": PASSAGES_FIELD,
                "score_mode": "max",
                "query": passages,
                "inner_hits": best_passage_inner_hits(),
            }
        }
        query: dict[str, Any] = (
            {"bool": {"must": [nested], "filter": filters}} if filters else nested
        )
    else:
        base = {"bool": {"filter": [*(filters or []), exists]}}
        query = {"script_score": {"query": base, "script": script}}
    return {
        "query": query,
        "size": size,
        "from": offset,
        "_source": source_spec(contract, source),
    }


def rrf_body(
    legs: Sequence[str],
    contract: IndexContract,
    *,
    query: str,
    vector: Sequence[float] | None,
    sparse: Mapping[str, float] | None,
    size: int,
    window: int,
    rank_constant: int = 60,
    num_candidates: int | None = None,
    fields: Sequence[str] | None = None,
    filters: list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = None,
    window_key: str = "rank_window_size",
    oversample: float | None = None,
) -> dict[str, Any]:
    """Server-side hybrid over any legs, in their order: the ``rrf`` retriever over one
    :func:`leg_retriever` per leg, the filters on each child.

    ``window_key``: ``rank_window_size`` (8.15+) or ``window_size`` (8.14's name)."""
    retriever = partial(
        leg_retriever, contract=contract, query=query, vector=vector, sparse=sparse,
        window=window, num_candidates=num_candidates, fields=fields, filters=filters,
        oversample=oversample,
    )  # fmt: skip
    retrievers = [retriever(leg) for leg in legs]
    return {
        "retriever": {
            "rrf": {"retrievers": retrievers, "rank_constant": rank_constant, window_key: window}
        },
        "size": size,
        "_source": source_spec(contract, source),
    }


def linear_body(
    query: str,
    vector: Sequence[float],
    contract: IndexContract,
    *,
    size: int,
    window: int,
    alpha: float,
    num_candidates: int | None = None,
    fields: Sequence[str] | None = None,
    filters: list[dict[str, Any]] | None = None,
    source: Sequence[str] | None = None,
    oversample: float | None = None,
) -> dict[str, Any]:
    """Server-side weighted fusion of keyword and kNN (8.18+): the ``linear`` retriever, each
    leg min-max normalised and weighted like client-side weighted fusion (kNN ``alpha``, BM25
    1-alpha)."""
    weights = {"keyword": 1.0 - alpha, "knn": alpha}
    retriever = partial(
        leg_retriever, contract=contract, query=query, vector=vector, sparse=None,
        window=window, num_candidates=num_candidates, fields=fields, filters=filters,
        oversample=oversample,
    )  # fmt: skip
    children = [
        {"retriever": retriever(leg), "weight": weight, **MINMAX} for leg, weight in weights.items()
    ]
    return {
        "retriever": {"linear": {"retrievers": children, "rank_window_size": window}},
        "size": size,
        "_source": source_spec(contract, source),
    }


def leg_retriever(
    leg: str,
    contract: IndexContract,
    *,
    query: str,
    vector: Sequence[float] | None,
    sparse: Mapping[str, float] | None,
    window: int,
    num_candidates: int | None,
    fields: Sequence[str] | None,
    filters: list[dict[str, Any]] | None,
    oversample: float | None,
) -> dict[str, Any]:
    """One leg of a server-side fusion: keyword (BM25) and sparse (its ``sparse_vector`` query,
    every licence from 8.15) as ``standard`` retrievers with the filters, kNN as a ``knn``
    retriever (which takes ``rescore_vector`` like the top-level knn section, but no
    inner_hits: no best-passage snippet with server-side fusion)."""
    if leg == "knn":
        if vector is None:
            raise ValueError("the knn leg needs a query vector")
        knn = knn_section(vector, contract, k=window, num_candidates=num_candidates,
                          filters=filters, inner_hits=False, oversample=oversample)  # fmt: skip
        return {"knn": knn}
    if leg == "keyword":
        clause = keyword_query(query, contract, fields, [])
    elif leg == "sparse" and sparse is not None:
        clause = sparse_query(sparse, contract, [])
    else:
        raise ValueError(f"leg {leg!r} cannot be fused on the server (or has no query)")
    standard: dict[str, Any] = {"query": clause}
    if filters:
        standard["filter"] = filters
    return {"standard": standard}
