"""eval's ``server-rrf`` mode fuses the legs eval runs (#28): with the sparse leg, the server's
rrf retriever over keyword, kNN and sparse (through the Searcher's plan, one body builder), so
it ranks as the client's three-leg RRF does; ``server-rrf:keyword+knn`` names its legs."""

from __future__ import annotations

import pytest

from es_semantic import Indexer, Searcher
from es_semantic.encoding.sparse import SparseEncoder
from es_semantic.errors import ConfigError, SearchError
from es_semantic.evaluation.runner import build_modes, check_modes, run_legs
from tests.integration.test_sparse import DOCS, QUERIES
from tests.sparse_models import splade_tiny_dir


@pytest.fixture(scope="module")
def splade() -> SparseEncoder:
    return SparseEncoder(splade_tiny_dir())


@pytest.fixture
def searcher(es, index_name, tiny, splade) -> Searcher:
    Indexer(es, index_name, tiny, sparse_encoder=splade, chunking="none").index(DOCS)
    return Searcher(es, index_name, tiny, sparse_encoder=splade)


def _scores(run, qid):
    return dict(zip(run.ranked[qid], run.scores[qid], strict=True))


def test_server_rrf_fuses_every_leg_run(searcher, server_fusion):
    queries = {f"q{i}": text for i, text in enumerate(QUERIES)}
    legs = run_legs(searcher, queries, depth=10)
    assert set(legs.hits) == {"keyword", "knn", "sparse"}
    modes = ["rrf", "server-rrf", "rrf:keyword+knn", "server-rrf:keyword+knn"]
    runs = build_modes(modes, legs, queries, searcher=searcher, depth=10)
    for qid in queries:
        # the same RRF score for every document as the client's fusion of the same legs
        assert _scores(runs["server-rrf"], qid) == pytest.approx(_scores(runs["rrf"], qid))
        assert _scores(runs["server-rrf:keyword+knn"], qid) == pytest.approx(
            _scores(runs["rrf:keyword+knn"], qid)
        )
    assert runs["server-rrf"].ranked != runs["server-rrf:keyword+knn"].ranked  # sparse counts


def test_server_rrf_names_only_legs_that_were_run(searcher):
    check_modes(["server-rrf:keyword+sparse"])
    with pytest.raises(ConfigError, match="two or three different legs"):
        check_modes(["server-rrf:keyword"])
    queries = {"q0": "capital of france"}
    two = Searcher(searcher.es, searcher.index, searcher.encoder)  # keyword and kNN run
    legs = run_legs(two, queries, depth=5)
    with pytest.raises(ConfigError, match="--sparse-model"):
        build_modes(["server-rrf:keyword+sparse"], legs, queries, searcher=two, depth=5)


def test_server_rrf_on_a_basic_licence_is_refused_in_one_line(es_server, searcher):
    """Through the basic-licence proxy: the server's rrf retriever is refused (as search's
    fusion='server' is), naming the licence."""
    from es_semantic.config import ESConfig
    from es_semantic.elastic.client import make_client
    from tests.integration.basic_cluster import BasicCluster
    from tests.integration.cluster9 import Cluster9
    from tests.integration.fault_proxy import fault_proxy
    from tests.integration.test_search import CLIENT_MAJOR

    rule = (Cluster9 if CLIENT_MAJOR >= 9 else BasicCluster)(es_server.config.url)
    with fault_proxy(es_server.config.url, rule, forward_headers=rule.forward_headers) as proxy:
        client = make_client(ESConfig(url=proxy.url))
        try:
            basic = Searcher(client, searcher.index, searcher.encoder,
                             sparse_encoder=searcher.sparse_encoder)  # fmt: skip
            queries = {"q0": "capital of france"}
            legs = run_legs(basic, queries, depth=5)
            with pytest.raises(SearchError, match=r"enterprise or trial licence; .* basic"):
                build_modes(["server-rrf"], legs, queries, searcher=basic, depth=5)
        finally:
            client.close()
