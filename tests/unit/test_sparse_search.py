"""Sparse mode and hybrid over any set of legs: the request, the bodies, the fusion (pure)."""

from __future__ import annotations

from typing import Any

import pytest

from es_semantic.cluster import ClusterInfo
from es_semantic.errors import InputError, SearchError
from es_semantic.schema.contract import IndexContract, SparseLeg
from es_semantic.search import core
from es_semantic.search.fusion import leg_weights
from es_semantic.search.request import SearchRequest
from tests.unit.test_sparse_contract import DENSE, Spec

VECTOR = [0.1] * 8
SPARSE = {"cat": 1.5, ".": 0.5, "dog": 0.0}


def contract(**leg: Any) -> IndexContract:
    return IndexContract.from_encoder(
        DENSE, chunking="none", sparse=SparseLeg.from_model(Spec(), **leg)
    )


def test_legs_are_checked() -> None:
    assert SearchRequest("q").leg_names == ("keyword", "knn")
    assert SearchRequest("q", mode="sparse").leg_names == ("sparse",)
    assert SearchRequest("q", legs="keyword, sparse").leg_names == ("keyword", "sparse")
    assert SearchRequest("q", legs=["knn", "sparse", "keyword"]).legs == (
        "knn",
        "sparse",
        "keyword",
    )
    with pytest.raises(InputError, match="leg='bm25' is not one of keyword, knn, sparse"):
        SearchRequest("q", legs="keyword,bm25")
    with pytest.raises(InputError, match="twice"):
        SearchRequest("q", legs="knn,knn")
    with pytest.raises(InputError, match="two or three legs"):
        SearchRequest("q", legs="sparse")
    with pytest.raises(InputError, match="legs apply to mode='hybrid'"):
        SearchRequest("q", mode="knn", legs="keyword,knn")


def test_sparse_mode_body() -> None:
    plan = core.plan_search(SearchRequest("q", mode="sparse", k=5, offset=5), contract(), None,
                            sparse=SPARSE)  # fmt: skip
    body = plan.bodies["sparse"]
    assert body["query"] == {"sparse_vector": {"field": "sparse",
                                               "query_vector": {"cat": 1.5, "%2E": 0.5}}}  # fmt: skip
    assert (body["size"], body["from"], plan.fusion, plan.paged_by_server) == (5, 5, None, True)
    assert "sparse" in body["_source"]["excludes"]


def test_pruning_and_filters_reach_the_query() -> None:
    c = IndexContract.from_encoder(
        DENSE, chunking="none", metadata_fields={"lang": "keyword"},
        sparse=SparseLeg.from_model(Spec(), prune=True, tokens_weight_threshold=0.3),
    )  # fmt: skip
    request = SearchRequest("q", mode="sparse", filters={"lang": "en"})
    query = core.plan_search(request, c, None, sparse=SPARSE).bodies["sparse"]["query"]
    clause = query["bool"]["must"][0]["sparse_vector"]
    assert clause["prune"] is True
    assert clause["pruning_config"] == {"tokens_freq_ratio_threshold": 5.0,
                                        "tokens_weight_threshold": 0.3}  # fmt: skip
    assert query["bool"]["filter"] == [{"term": {"lang": "en"}}]


def test_a_query_without_weights_matches_nothing() -> None:
    plan = core.plan_search(SearchRequest("q", mode="sparse"), contract(), None, sparse={"a": 0.0})
    assert plan.bodies["sparse"]["query"] == {"match_none": {}}


ENTERPRISE = ClusterInfo("8.19.0", (8, 19, 0), "enterprise", "active")
BASIC = ClusterInfo("8.19.0", (8, 19, 0), "basic", "active")


def test_hybrid_over_three_legs_fuses_on_the_server_where_licensed() -> None:
    c = IndexContract.from_encoder(
        DENSE, chunking="none", metadata_fields={"lang": "keyword"},
        sparse=SparseLeg.from_model(Spec()),
    )  # fmt: skip
    request = SearchRequest("q", legs="keyword,knn,sparse", k=3, rank_constant=20,
                            filters={"lang": "en"})  # fmt: skip
    plan = core.plan_search(request, c, VECTOR, cluster=ENTERPRISE, sparse=SPARSE)
    assert (list(plan.bodies), plan.fusion, plan.server_fusion) == (["rrf"], "server-rrf", "rrf")
    rrf = plan.bodies["rrf"]["retriever"]["rrf"]
    assert (rrf["rank_constant"], rrf["rank_window_size"]) == (20, 100)
    keyword, knn, sparse = rrf["retrievers"]
    flt = [{"term": {"lang": "en"}}]
    assert keyword["standard"]["filter"] == flt and "sparse_vector" not in str(keyword)
    assert knn["knn"]["query_vector"] == VECTOR and knn["knn"]["filter"] == flt
    assert knn["knn"]["k"] == 100
    assert sparse["standard"] == {
        "query": {"sparse_vector": {"field": "sparse", "query_vector": {"cat": 1.5, "%2E": 0.5}}},
        "filter": flt,
    }
    assert plan.bodies["rrf"]["size"] == 3
    assert "sparse" in plan.bodies["rrf"]["_source"]["excludes"]
    server = core.plan_search(SearchRequest("q", legs="sparse,keyword", fusion="server"), c,
                              None, cluster=ENTERPRISE, sparse=SPARSE)  # fmt: skip
    kinds = [next(iter(r["standard"]["query"])) for r in
             server.bodies["rrf"]["retriever"]["rrf"]["retrievers"]]  # fmt: skip
    assert kinds == ["sparse_vector", "multi_match"]  # the legs' order; no vector needed


def test_hybrid_over_three_legs_fuses_on_the_client_otherwise() -> None:
    request = SearchRequest("q", legs="keyword,knn,sparse", fusion="auto", k=3)
    for cluster, refused in ((BASIC, frozenset()), (ENTERPRISE, frozenset({"rrf"}))):
        plan = core.plan_search(request, contract(), VECTOR, cluster=cluster, refused=refused,
                                sparse=SPARSE)  # fmt: skip
        assert list(plan.bodies) == ["keyword", "knn", "sparse"]
        assert plan.fusion == "rrf" and not plan.paged_by_server
    adaptive = SearchRequest("q", legs="keyword,knn,sparse", fusion="adaptive")
    plan = core.plan_search(adaptive, contract(), VECTOR, cluster=ENTERPRISE, sparse=SPARSE)
    assert plan.fusion == "adaptive"  # a client fusion named stays on the client
    nested = IndexContract.from_encoder(DENSE, sparse=SparseLeg.from_model(Spec()))
    assert nested.nested  # passages: only client fusion returns the best passage
    assert core.plan_search(request, nested, VECTOR, cluster=ENTERPRISE,
                            sparse=SPARSE).fusion == "rrf"  # fmt: skip
    with pytest.raises(SearchError, match=r"enterprise or trial licence; .* basic"):
        core.plan_search(SearchRequest("q", legs="knn,sparse", fusion="server"), contract(),
                         VECTOR, cluster=BASIC, sparse=SPARSE)  # fmt: skip
    two = core.plan_search(SearchRequest("q", legs="keyword,sparse"), contract(), None,
                           sparse=SPARSE)  # fmt: skip
    assert list(two.bodies) == ["keyword", "sparse"]  # no vector needed without the knn leg


def _response(ids: list[str]) -> dict[str, Any]:
    hits = [{"_index": "i", "_id": d, "_score": 10.0 - n, "_source": {"text": d}}
            for n, d in enumerate(ids)]  # fmt: skip
    return {"took": 1, "hits": {"total": {"value": len(ids), "relation": "eq"}, "hits": hits}}


def test_three_legs_fused_by_rrf_and_weighted() -> None:
    request = SearchRequest("q", legs="keyword,knn,sparse", k=3)
    plan = core.plan_search(request, contract(), VECTOR, sparse=SPARSE)
    responses = {"keyword": _response(["a", "b"]), "knn": _response(["c", "b"]),
                 "sparse": _response(["b", "d"])}  # fmt: skip
    result = core.assemble(request, contract(), plan, responses, {})
    assert [h.id for h in result.hits][:1] == ["b"]  # found by all three legs
    assert set(result.hits[0].scores) >= {"keyword", "knn", "sparse", "rrf"}
    three = SearchRequest("q", legs="keyword,knn,sparse", alpha=0.6)
    assert leg_weights(three.leg_names, three.alpha) == pytest.approx(
        {"keyword": 0.2, "knn": 0.6, "sparse": 0.2}
    )
    two = SearchRequest("q", alpha=0.7)
    assert leg_weights(two.leg_names, two.alpha) == pytest.approx({"knn": 0.7, "keyword": 0.3})
    assert leg_weights(("keyword", "sparse"), 0.7) == pytest.approx({"keyword": 0.5, "sparse": 0.5})


def test_sparse_needs_a_leg_and_a_new_enough_cluster() -> None:
    plain = IndexContract.from_encoder(DENSE)
    with pytest.raises(SearchError, match="no sparse leg"):
        core.plan_search(SearchRequest("q", mode="sparse"), plain, None, sparse=SPARSE)
    old = ClusterInfo("8.14.3", (8, 14, 3), "basic", "active")
    with pytest.raises(SearchError, match=r"8\.15 or later; this cluster is 8\.14\.3"):
        core.plan_search(SearchRequest("q", mode="sparse"), contract(), None, cluster=old,
                         sparse=SPARSE)  # fmt: skip


def test_weighted_over_three_legs_is_one_rule_for_search_and_eval() -> None:
    """A search's weighted fusion and eval's rank the same three legs alike at any alpha (eval
    gave kNN alpha and search equal thirds: a stored alpha meant nothing to the search)."""
    from es_semantic.evaluation.runner import LegRuns, fused_mode
    from es_semantic.search.fusion import LegHit

    lists = {"keyword": ["a", "b", "x"], "knn": ["b", "c", "y"], "sparse": ["a", "d", "z"]}
    responses = {leg: _response(ids) for leg, ids in lists.items()}
    legs = {leg: [LegHit(h["_id"], h["_score"]) for h in r["hits"]["hits"]]
            for leg, r in responses.items()}  # fmt: skip
    runs = LegRuns()
    for leg, hits in legs.items():
        runs.hits[leg], runs.ms[leg] = {"q1": hits}, {"q1": 1.0}
    orders = set()
    for alpha in (0.2, 0.5, 0.9):
        request = SearchRequest("q", legs="keyword,knn,sparse", k=5, fusion="weighted",
                                alpha=alpha)  # fmt: skip
        plan = core.plan_search(request, contract(), VECTOR, sparse=SPARSE)
        searched = [h.id for h in core.assemble(request, contract(), plan, responses, {}).hits]
        evaluated = fused_mode(runs, "weighted", alpha=alpha).ranked["q1"][:5]
        assert searched == evaluated
        orders.add(tuple(searched[:2]))
    assert len(orders) > 1  # alpha changes a three-leg search's order


def test_an_unknown_client_fusion_is_refused_by_name() -> None:
    from es_semantic.search.fusion import LegHit, fuse_legs

    with pytest.raises(ValueError, match="unknown client fusion 'linear'"):
        fuse_legs("linear", {"keyword": [LegHit("a", 1.0)]})
