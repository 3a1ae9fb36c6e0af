"""Which legs a search runs and how they combine (pure): the sparse leg's checks, weighted
fusion's weights, and the bodies of hybrid over any set of legs (keyword, knn, sparse)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from es_semantic.cluster import ClusterInfo
from es_semantic.errors import SearchError, SearchRefused
from es_semantic.schema.contract import IndexContract
from es_semantic.search import queries
from es_semantic.search.request import SearchRequest


def needs_sparse(request: SearchRequest) -> bool:
    return "sparse" in request.leg_names


def check_sparse(request: SearchRequest, contract: IndexContract, cluster: ClusterInfo) -> None:
    """Refuse a sparse search the index or the cluster cannot answer."""
    if not needs_sparse(request):
        return
    if contract.sparse is None:
        raise SearchRefused(
            "this index has no sparse leg: create one with `--sparse-model` (create-index or "
            "index into a new index), or search with mode keyword, knn or hybrid"
        )
    if (0, 0, 0) < cluster.version < (8, 15, 0):
        raise SearchRefused(
            f"the sparse leg's sparse_vector query needs Elasticsearch 8.15 or later; this "
            f"cluster is {cluster.number}"
        )


def legs_plan(
    request: SearchRequest, contract: IndexContract, vector: Sequence[float] | None,
    sparse: Mapping[str, float] | None, window: int, fields: list[str] | None,
    filters: list[dict[str, Any]], source: list[str] | None,
) -> tuple[dict[str, dict[str, Any]], str]:  # fmt: skip
    """Hybrid over the legs named (any of keyword, knn, sparse): one body per leg, fused on the
    client (``weighted``/``linear``: weighted; ``adaptive``; ``zscore``; otherwise RRF).
    Server-side RRF over these legs is ``queries.rrf_body``."""
    bodies: dict[str, dict[str, Any]] = {}
    for leg in request.leg_names:
        if leg == "keyword":
            bodies[leg] = queries.keyword_body(
                request.query, contract, size=window, fields=fields, filters=filters,
                source=source, highlight=request.highlight,
            )  # fmt: skip
        elif leg == "knn":
            bodies[leg] = queries.knn_body(
                vector_of(vector), contract, size=window, filters=filters, source=source,
                num_candidates=request.num_candidates, oversample=request.oversample,
            )  # fmt: skip
        else:
            bodies[leg] = queries.sparse_body(sparse_of(sparse), contract, size=window,
                                              filters=filters, source=source)  # fmt: skip
    fusion = {"weighted": "weighted", "linear": "weighted", "adaptive": "adaptive",
              "zscore": "zscore"}  # fmt: skip
    return bodies, fusion.get(request.fusion, "rrf")


def vector_of(vector: Sequence[float] | None) -> Sequence[float]:
    if vector is None:
        raise SearchError("internal: a vector is needed for the knn leg")
    return vector


def sparse_of(sparse: Mapping[str, float] | None) -> Mapping[str, float]:
    if sparse is None:
        raise SearchError("internal: a sparse query vector is needed for the sparse leg")
    return sparse
