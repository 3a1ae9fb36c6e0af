"""The I/O-free heart of search: validate a request, plan the ES bodies, assemble the result.

Sync and async searchers both call these functions; they only add the network and the model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from es_semantic.cluster import ClusterInfo
from es_semantic.errors import InputError, SearchError, SearchRefused
from es_semantic.schema.contract import PASSAGES_FIELD, IndexContract
from es_semantic.schema.filters import build_filters
from es_semantic.search import queries
from es_semantic.search.fusion import CLIENT_FUSIONS, Fused, LegHit, fuse_legs, interpolate
from es_semantic.search.legs import check_sparse, legs_plan, sparse_of, vector_of
from es_semantic.search.request import (
    SearchRequest,
)
from es_semantic.types import Hit, SearchResult


@dataclass(frozen=True)
class SearchPlan:
    """The bodies to send (one per leg, sent in one ``_msearch``) and how to combine them."""

    bodies: dict[str, dict[str, Any]]
    fusion: str | None  # "server-rrf", "server-linear", "rrf", "weighted"; None: one leg
    paged_by_server: bool  # from/size already applied by Elasticsearch

    @property
    def server_fusion(self) -> str | None:
        """``rrf`` or ``linear`` when the cluster fuses, else None."""
        return self.fusion.removeprefix("server-") if self.fusion in SERVER_FUSIONS else None


SERVER_FUSIONS = ("server-rrf", "server-linear")
UNKNOWN_CLUSTER = ClusterInfo("0.0.0", (0, 0, 0))


def given_vector(vector: Sequence[float] | None, contract: IndexContract) -> list[float] | None:
    """A caller-supplied query vector, checked against the index's dims."""
    if vector is None:
        return None
    values = [float(v) for v in vector]
    if len(values) != contract.dims:
        raise InputError(f"query_vector has {len(values)} dims; the index has {contract.dims}")
    return values


def needs_vector(request: SearchRequest) -> bool:
    return "knn" in request.leg_names


def plan_search(
    request: SearchRequest,
    contract: IndexContract,
    vector: Sequence[float] | None,
    *,
    cluster: ClusterInfo = UNKNOWN_CLUSTER,
    refused: frozenset[str] = frozenset(),
    sparse: Mapping[str, float] | None = None,
) -> SearchPlan:
    """Build the request bodies for ``request`` on an index with ``contract``.

    ``cluster`` decides what the server may do (server-side fusion, rescoring); ``refused``:
    server fusions this cluster already refused (licence), not tried again; ``sparse``: the
    query's ``{token: weight}`` for the sparse leg."""
    check_sparse(request, contract, cluster)
    if needs_vector(request) and vector is None:
        raise SearchError("internal: a vector is needed for the knn leg")
    if request.oversample is not None and not cluster.rescore_vector:
        raise SearchRefused(
            f"oversample (kNN rescore_vector) needs Elasticsearch 8.18 or later; this cluster "
            f"is {cluster.number}"
        )
    if request.fusion == "server" and (why := cluster.fusion_refusal("rrf")):
        raise SearchRefused(why)
    filters = build_filters(request.filters, list(contract.metadata_fields))
    fields = _check_fields(request.fields, contract)
    source = _source_with_texts(request, contract)
    client_paging = request.rerank
    size = request.depth if client_paging else request.k
    offset = 0 if client_paging else request.offset
    if request.mode == "keyword":
        body = queries.keyword_body(
            request.query, contract, size=size, offset=offset, fields=fields, filters=filters,
            source=source, highlight=request.highlight,
        )  # fmt: skip
        return SearchPlan({"keyword": body}, None, not client_paging)
    if request.mode == "sparse":
        body = queries.sparse_body(sparse_of(sparse), contract, size=size, offset=offset,
                                   filters=filters, source=source)  # fmt: skip
        return SearchPlan({"sparse": body}, None, not client_paging)
    if request.mode == "knn":
        if request.exact:
            body = queries.exact_knn_body(vector_of(vector), contract, size=size, offset=offset,
                                          filters=filters, source=source)  # fmt: skip
        else:
            body = queries.knn_body(
                vector_of(vector), contract, size=size, offset=offset, filters=filters,
                source=source, num_candidates=request.num_candidates, oversample=request.oversample,
            )  # fmt: skip
        return SearchPlan({"knn": body}, None, not client_paging)
    window = max(request.window, request.depth)
    server = _server_fusion(request, contract, cluster, refused)
    if server == "rrf":
        body = queries.rrf_body(
            request.leg_names, contract, query=request.query, vector=vector,
            sparse=sparse_of(sparse) if "sparse" in request.leg_names else None,
            size=request.depth, window=window, rank_constant=request.rank_constant,
            num_candidates=request.num_candidates, fields=fields, filters=filters,
            source=source, window_key=cluster.rrf_window_key, oversample=request.oversample,
        )  # fmt: skip
        return SearchPlan({"rrf": body}, "server-rrf", False)
    if server == "linear":
        body = queries.linear_body(
            request.query, vector_of(vector), contract, size=request.depth, window=window,
            alpha=request.alpha, num_candidates=request.num_candidates, fields=fields,
            filters=filters, source=source, oversample=request.oversample,
        )  # fmt: skip
        return SearchPlan({"linear": body}, "server-linear", False)
    bodies, fusion = legs_plan(request, contract, vector, sparse, window, fields, filters, source)
    return SearchPlan(bodies, fusion, False)


def _server_fusion(
    request: SearchRequest, contract: IndexContract, cluster: ClusterInfo, refused: frozenset[str]
) -> str | None:
    """Which retriever fuses on the server (``rrf``/``linear``), or None for client fusion.

    ``server`` always asks for rrf (a refusal is an error); ``auto`` and ``linear`` use the
    server only where version and licence allow and it has not refused before, and not on
    chunked indices, whose best passage only client fusion returns."""
    if request.fusion == "server":
        return "rrf"
    kind = {"auto": "rrf", "linear": "linear"}.get(request.fusion)
    if kind == "linear" and set(request.leg_names) != {"keyword", "knn"}:
        return None  # the linear retriever fuses keyword and kNN only
    if kind is None or contract.nested or kind in refused:
        return None
    return kind if cluster.server_fusion(kind) else None  # type: ignore[arg-type]


def _check_fields(fields: Sequence[str] | None, contract: IndexContract) -> list[str] | None:
    if fields is None:
        return None
    for spec in fields:
        name = spec.split("^", 1)[0]
        if name not in contract.text_fields:
            raise InputError(
                f"cannot search field {name!r}: text fields are {', '.join(contract.text_fields)}"
            )
    return list(fields)


def _source_with_texts(request: SearchRequest, contract: IndexContract) -> list[str] | None:
    if request.source is None:
        return None
    return list(dict.fromkeys([*request.source, *(contract.text_fields if request.rerank else ())]))


@dataclass
class _Candidate:
    id: str
    score: float
    source: dict[str, Any] = field(default_factory=dict)
    highlights: dict[str, list[str]] = field(default_factory=dict)
    passage: str | None = None


def best_passage(raw_hit: Mapping[str, Any]) -> str | None:
    """The text of the best passage a chunked document's hit carries as its inner hit."""
    inner = (raw_hit.get("inner_hits") or {}).get(PASSAGES_FIELD) or {}
    for hit in inner.get("hits", {}).get("hits", []):
        for entry in (hit.get("fields") or {}).get(PASSAGES_FIELD, []):
            texts = entry.get("text") if isinstance(entry, Mapping) else None
            if texts:
                return str(texts[0])
        text = (hit.get("_source") or {}).get("text")
        if isinstance(text, str):
            return text
    return None


def _leg_hits(response: Mapping[str, Any]) -> list[_Candidate]:
    out = []
    for raw in response.get("hits", {}).get("hits", []):
        out.append(
            _Candidate(
                str(raw["_id"]),
                float(raw.get("_score") or 0.0),
                raw.get("_source") or {},
                raw.get("highlight") or {},
                best_passage(raw),
            )
        )
    return out


def hit_indices(responses: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The concrete indices the hits of some ``_msearch`` responses came from."""
    return {
        str(hit["_index"])
        for response in responses.values()
        for hit in response.get("hits", {}).get("hits", [])
        if "_index" in hit
    }


def response_error(response: Mapping[str, Any]) -> str | None:
    """The error of one ``_msearch`` response item, as text; None when it succeeded."""
    error = response.get("error")
    if error is None:
        return None
    if isinstance(error, Mapping):
        root = (error.get("root_cause") or [error])[0]
        return f"HTTP {response.get('status')} {root.get('type')}: {root.get('reason')}"
    return str(error)


def is_fusion_refusal(response: Mapping[str, Any]) -> bool:
    """Whether an error means "this cluster will not run that retriever" (licence/version)."""
    text = (response_error(response) or "").lower()
    status = response.get("status")
    return (status == 403 and "licen" in text) or (
        status == 400 and ("retriever" in text or "rrf" in text) and "unknown" in text
    )


def assemble(
    request: SearchRequest,
    contract: IndexContract,
    plan: SearchPlan,
    responses: Mapping[str, Mapping[str, Any]],
    took_ms: dict[str, float],
) -> SearchResult:
    """Parse the leg responses, fuse when there are two, page, and build the SearchResult."""
    for leg, response in responses.items():
        took_ms[f"{leg}_server"] = float(response.get("took", 0))
    legs = {leg: _leg_hits(resp) for leg, resp in responses.items()}
    warnings: list[str] = []
    by_id: dict[str, _Candidate] = {}
    for leg_hits in legs.values():
        for cand in leg_hits:
            known = by_id.setdefault(cand.id, cand)
            known.highlights = known.highlights or cand.highlights
            known.passage = known.passage or cand.passage
    if plan.fusion in CLIENT_FUSIONS:
        leg_lists = {leg: [LegHit(c.id, c.score) for c in cs] for leg, cs in legs.items()}
        fused = fuse_legs(plan.fusion, leg_lists, rank_constant=request.rank_constant,
                          alpha=request.alpha)  # fmt: skip
    else:
        ((leg, only),) = legs.items()
        fused = [Fused(c.id, c.score, {leg: i + 1}, {leg: c.score}) for i, c in enumerate(only)]
        if plan.server_fusion is not None:
            for f in fused:
                f.scores = {plan.server_fusion: f.score}
    if request.mode == "knn" and request.filters and not request.exact:
        found = len(legs["knn"]) + (request.offset if plan.paged_by_server else 0)
        if found < request.offset + request.k:
            warnings.append(
                f"filtered kNN returned {found} hits, fewer than the {request.offset + request.k} "
                "asked for: the filter is selective; use exact=True (--exact) for a full scan"
            )
    # only the hits the page (or the rerank pool) can use become Hit objects
    hits = [_to_hit(f, by_id[f.id], contract, plan.fusion) for f in fused[: request.depth]]
    total = responses[next(iter(responses))].get("hits", {}).get("total")
    total_value = total.get("value") if isinstance(total, Mapping) else total
    if plan.fusion is not None:
        total_value = len(fused)
    return SearchResult(
        mode=request.mode, hits=hits, total=total_value, took_ms=took_ms, fusion=plan.fusion,
        warnings=warnings,
    )  # fmt: skip


def _to_hit(f: Fused, cand: _Candidate, contract: IndexContract, fusion: str | None) -> Hit:
    scores = dict(f.scores)
    if fusion in CLIENT_FUSIONS:
        scores[fusion] = f.score
    hidden = {contract.vector_field, PASSAGES_FIELD}
    if contract.sparse is not None:
        hidden.add(contract.sparse.field)
    source = {k: v for k, v in cand.source.items() if k not in hidden}
    return Hit(f.id, f.score, source, cand.highlights, scores, dict(f.ranks), cand.passage)


def page(result: SearchResult, request: SearchRequest, plan: SearchPlan) -> SearchResult:
    """Apply offset/k on the client where the server did not."""
    if plan.paged_by_server:
        return result
    return replace(result, hits=result.hits[request.offset : request.offset + request.k])


def passage_text(source: Mapping[str, Any], text_fields: Sequence[str]) -> str:
    """The text a cross-encoder reads for a hit: its text fields, in contract order."""
    parts = [source.get(name) for name in text_fields]
    return " ".join(p.strip() for p in parts if isinstance(p, str) and p.strip())


def rerank_text(hit: Hit, text_fields: Sequence[str]) -> str:
    """What the cross-encoder reads: the best passage of a chunked document, else its texts."""
    return hit.passage or passage_text(hit.source, text_fields)


def apply_rerank(
    result: SearchResult, request: SearchRequest, scores: Sequence[float] | None, elapsed_ms: float
) -> SearchResult:
    """Reorder the top ``rerank_top`` hits by cross-encoder score (None: budget ran out),
    blended with the first stage's by ``request.rerank_weight`` (1 or None: the cross-encoder's
    score alone; 0: the first stage's order)."""
    took = {**result.took_ms, "rerank": elapsed_ms}
    if scores is None:
        warning = f"rerank skipped: over the {request.rerank_budget_ms} ms budget"
        return replace(result, took_ms=took, warnings=[*result.warnings, warning])
    pool = result.hits[: request.rerank_top]
    weight = 1.0 if request.rerank_weight is None else request.rerank_weight
    final = list(scores) if weight == 1.0 else interpolate([h.score for h in pool], scores, weight)
    rescored = [
        Hit(h.id, float(f), h.source, h.highlights, {**h.scores, "rerank": float(s)},
            {**h.ranks, "retrieval": i + 1}, h.passage)
        for i, (h, s, f) in enumerate(zip(pool, scores, final, strict=True))
    ]  # fmt: skip
    rescored.sort(key=lambda h: (-h.score, h.ranks["retrieval"]))
    return replace(result, hits=rescored + result.hits[request.rerank_top :], reranked=True,
                   took_ms=took)  # fmt: skip
