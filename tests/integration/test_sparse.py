"""The learned sparse leg against a real ES-API server (and the basic-licence proxy):
SPLADE-tiny vectors written by every indexer, the contract checked, and searched."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import BadRequestError, Elasticsearch

from es_semantic import AsyncSearcher, IndexContractError, Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.encoding.sparse import SparseEncoder
from es_semantic.errors import ConfigError, SearchError
from es_semantic.indexing.async_indexer import AsyncIndexer
from es_semantic.schema.contract import IndexContract, escape_vector
from tests.sparse_models import build_tiny_mlm, splade_tiny_dir

DOCS = [
    {"id": "paris", "text": "Paris is the capital and most populous city of France."},
    {
        "id": "bm25",
        "text": "BM25 ranks documents by term frequency and inverse document frequency.",
    },
    {"id": "usa", "text": "The U.S. Senate approved the bill on Tuesday after a long debate."},
    {"id": "whales", "text": "Blue whales are the largest animals known to have ever existed."},
    {"id": "python", "text": "Python is a programming language that emphasises readable code."},
    {"id": "rain", "text": "Heavy rain and strong winds are expected along the coast tonight."},
]


@pytest.fixture(scope="module")
def splade() -> SparseEncoder:
    return SparseEncoder(splade_tiny_dir())


def sparse_hits(es: Elasticsearch, index: str, vector: dict[str, float]) -> list[str]:
    body: dict[str, Any] = {"sparse_vector": {"field": "sparse", "query_vector": vector}}
    hits = es.search(index=index, query=body, size=10)["hits"]["hits"]
    return [h["_id"] for h in hits]


def test_indexer_writes_sparse_vectors_with_escaped_names(es, index_name, tiny, splade):
    report = Indexer(es, index_name, tiny, sparse_encoder=splade).index(DOCS)
    assert (report.indexed, report.failed) == (len(DOCS), 0)
    meta = es.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert meta["properties"]["sparse"]["type"] == "sparse_vector"
    contract = IndexContract.from_meta(meta["_meta"], index_name)
    assert contract.sparse is not None and contract.sparse.model_fingerprint == splade.fingerprint
    query = splade.encode_queries(["capital of france"])[0]
    assert sparse_hits(es, index_name, escape_vector(query))[0] == "paris"
    dotted = splade.encode_documents(["the U.S. Senate"])[0]
    assert "." in dotted  # the model weighs the '.' token: its name had to be escaped
    assert sparse_hits(es, index_name, {"%2E": 1.0}), "the escaped '.' feature is stored"


def test_dotted_feature_names_are_refused_by_the_server(es, index_name):
    """Why escaping: Elasticsearch before 8.16 (and the emulator) refuse dots in names."""
    es.indices.create(index=index_name, mappings={"properties": {"s": {"type": "sparse_vector"}}})
    with pytest.raises(BadRequestError, match="dots in feature names"):
        es.index(index=index_name, document={"s": {"u.s.": 1.0}})


def test_async_indexer_writes_the_same_vectors(es_server, es, index_name, tiny, splade):
    from es_semantic.elastic.client import make_async_client

    async def go() -> Any:
        aes = make_async_client(es_server.config)
        try:
            return await AsyncIndexer(aes, index_name, tiny, sparse_encoder=splade).index(DOCS)
        finally:
            await aes.close()

    report = asyncio.run(go())
    assert (report.indexed, report.failed) == (len(DOCS), 0)
    query = splade.encode_queries(["largest animals"])[0]
    assert sparse_hits(es, index_name, escape_vector(query))[0] == "whales"


def test_the_sparse_leg_is_checked_before_writing(es, index_name, tiny, splade):
    Indexer(es, index_name, tiny, sparse_encoder=splade).index(DOCS[:2])
    with pytest.raises(IndexContractError, match="has a sparse leg"):
        Indexer(es, index_name, tiny).index(DOCS[2:])
    plain = index_name + "-plain"
    Indexer(es, plain, tiny).index(DOCS[:2])
    with pytest.raises(IndexContractError, match="has no sparse leg"):
        Indexer(es, plain, tiny, sparse_encoder=splade).index(DOCS[2:])
    assert es.count(index=index_name)["count"] == 2


@pytest.fixture
def sparse_index(es, index_name, tiny, splade):
    Indexer(es, index_name, tiny, sparse_encoder=splade).index(DOCS)
    return index_name


QUERIES = {
    "capital of france": "paris",
    "largest animal on earth": "whales",
    "senate passes legislation": "usa",
    "storm forecast for the coast": "rain",
}


def test_sparse_mode_finds_each_document_first(es, sparse_index, tiny, splade):
    """A real learning signal: SPLADE-tiny ranks each query's document first by the sparse leg
    alone (the tiny dense model is random: the sparse leg carries these)."""
    searcher = Searcher(es, sparse_index, tiny, sparse_encoder=splade)
    for query, expected in QUERIES.items():
        result = searcher.search(query, mode="sparse", k=3)
        assert result.hits[0].id == expected, (query, [h.id for h in result.hits])
        assert set(result.hits[0].scores) == {"sparse"}
        assert "sparse" not in result.hits[0].source and "text" in result.hits[0].source


def test_hybrid_over_three_legs(es, sparse_index, tiny, splade):
    searcher = Searcher(es, sparse_index, tiny, sparse_encoder=splade)
    result = searcher.search("capital of france", legs=["keyword", "knn", "sparse"], k=6)
    assert result.fusion == "zscore"  # auto, nothing stored: the sparse leg's default
    top = result.hits[0]
    assert top.id == "paris" and {"keyword", "knn", "sparse"} <= set(top.ranks)
    weighted = searcher.search("capital of france", legs="keyword,sparse", fusion="weighted")
    assert weighted.hits[0].id == "paris" and "knn" not in weighted.hits[0].scores


def test_async_searcher_sparse(es_server, sparse_index, tiny, splade):
    from es_semantic.elastic.client import make_async_client

    async def go() -> Any:
        aes = make_async_client(es_server.config)
        try:
            searcher = AsyncSearcher(aes, sparse_index, tiny, sparse_encoder=splade)
            return await searcher.search("largest animal on earth", mode="sparse", k=2)
        finally:
            await aes.close()

    assert asyncio.run(go()).hits[0].id == "whales"


def test_sparse_search_checks_the_contract(es, sparse_index, tiny, splade, tmp_path):
    # no sparse_encoder: the model the contract records (test_sparse_model_found.py)
    found = Searcher(es, sparse_index, tiny).search("capital of france", mode="sparse")
    assert found.hits[0].id == "paris"
    other = SparseEncoder(build_tiny_mlm(tmp_path / "other"))
    with pytest.raises(IndexContractError, match="sparse leg built with"):
        Searcher(es, sparse_index, tiny, sparse_encoder=other).search("capital", mode="sparse")
    plain = sparse_index + "-plain"
    Indexer(es, plain, tiny).index(DOCS[:2])
    with pytest.raises(SearchError, match="no sparse leg"):
        Searcher(es, plain, tiny, sparse_encoder=splade).search("capital", mode="sparse")


def _cli(es_server, tiny_st_dir, *args):
    result = CliRunner().invoke(
        cli, [*args, "--es-url", es_server.config.url, "--model", str(tiny_st_dir)],
        catch_exceptions=False,
    )  # fmt: skip
    return result


def test_cli_create_index_search_and_info(es_server, es, index_name, tiny_st_dir, tmp_path):
    model = str(splade_tiny_dir())
    made = _cli(es_server, tiny_st_dir, "create-index", index_name, "--sparse-model", model,
                "--sparse-prune")  # fmt: skip
    assert made.exit_code == 0 and "sparse leg" in made.output, made.output
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    indexed = _cli(es_server, tiny_st_dir, "index", index_name, str(corpus), "--quiet",
                   "--sparse-model", model, "--dead-letter", str(tmp_path / "dead.jsonl"))  # fmt: skip
    assert indexed.exit_code == 0, indexed.output
    found = _cli(es_server, tiny_st_dir, "search", index_name, "capital of france", "--mode",
                 "sparse", "--sparse-model", model, "--json")  # fmt: skip
    assert found.exit_code == 0, found.output
    body = json.loads(found.stdout)
    assert body["mode"] == "sparse" and body["hits"][0]["id"] == "paris"
    fused = _cli(es_server, tiny_st_dir, "search", index_name, "capital of france", "--legs",
                 "keyword,knn,sparse", "--sparse-model", model, "--json")  # fmt: skip
    assert fused.exit_code == 0, fused.output
    assert set(json.loads(fused.stdout)["hits"][0]["scores"]) >= {"keyword", "knn", "sparse"}
    found = _cli(es_server, tiny_st_dir, "search", index_name, "capital of france", "--mode",
                 "sparse", "--json")  # no --sparse-model: the model the contract records  # fmt: skip
    assert found.exit_code == 0 and json.loads(found.stdout)["hits"][0]["id"] == "paris"
    info = _cli(es_server, tiny_st_dir, "info", index_name, "--json")
    leg = json.loads(info.stdout)["contract"]["sparse"]
    assert leg["model_fingerprint"] == SparseEncoder(model).fingerprint and leg["prune"] is True
    text = _cli(es_server, tiny_st_dir, "info", index_name)
    assert "sparse     model" in text.output, text.output


def test_migration_carries_the_sparse_leg(es, index_name, tiny, splade, tmp_path):
    from es_semantic import Encoder
    from es_semantic.migration.migrator import migrate
    from tests.tiny_models import build_tiny_bert, make_sentence_transformers

    alias, old = index_name, f"{index_name}-v1"
    Indexer(es, old, tiny, sparse_encoder=splade).index(DOCS)
    es.indices.put_alias(index=old, name=alias)
    other = Encoder(make_sentence_transformers(build_tiny_bert(tmp_path / "b", seed=7)))
    indices_before = set(es.indices.get(index=f"{index_name}*"))
    with pytest.raises(ConfigError, match="has a sparse leg"):
        migrate(es, alias, other, new_index=f"{index_name}-v2")
    assert set(es.indices.get(index=f"{index_name}*")) == indices_before  # nothing made
    report = migrate(es, alias, other, new_index=f"{index_name}-v2", sparse_encoder=splade)
    assert report.swapped and report.copy is not None and report.copy.indexed == len(DOCS)
    moved = Searcher(es, alias, other, sparse_encoder=splade)
    assert (
        moved.contract().sparse
        == IndexContract.from_meta(
            es.indices.get_mapping(index=old)[old]["mappings"]["_meta"], old
        ).sparse
    )
    assert moved.search("capital of france", mode="sparse", k=1).hits[0].id == "paris"


def test_the_service_searches_the_sparse_leg(es_server, sparse_index, tiny, splade):
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from es_semantic.service.app import create_app
    from tests.integration.test_service import call, running

    app = create_app(tiny, es_config=es_server.config, sparse_encoder=splade)
    with running(app) as url:
        status, body, _ = call(f"{url}/indices/{sparse_index}/search",
                               {"query": "capital of france", "mode": "sparse", "k": 2})  # fmt: skip
        assert status == 200, body
        assert body["mode"] == "sparse" and body["hits"][0]["id"] == "paris"
        status, body, _ = call(f"{url}/indices/{sparse_index}/search",
                               {"query": "largest animal", "legs": ["keyword", "sparse"]})  # fmt: skip
        assert status == 200, body
        assert body["hits"][0]["id"] == "whales" and "sparse" in body["hits"][0]["scores"]
        status, body, _ = call(f"{url}/indices/{sparse_index}/search",
                               {"query": "q", "legs": ["keyword", "bm25"]})  # fmt: skip
        assert status == 400 and "bm25" in json.dumps(body), body


@pytest.fixture
def flat_sparse_index(es, index_name, tiny, splade):
    """One vector per document: auto may fuse on the server (chunked indices fuse on the client)."""
    Indexer(es, index_name, tiny, sparse_encoder=splade, chunking="none").index(DOCS)
    return index_name


def test_three_legs_fused_by_the_servers_rrf_retriever(
    es, flat_sparse_index, tiny, splade, server_fusion
):
    """The local server runs the rrf retriever as a licensed cluster: keyword, knn and the
    sparse_vector query in one request, ranked as client RRF ranks the same legs."""
    searcher = Searcher(es, flat_sparse_index, tiny, sparse_encoder=splade)
    legs = "keyword,knn,sparse"
    for query in QUERIES:
        server = searcher.search(query, legs=legs, fusion="server", k=6, window=10)
        client = searcher.search(query, legs=legs, fusion="rrf", k=6, window=10)
        assert server.fusion == "server-rrf" and set(server.hits[0].scores) == {"rrf"}
        assert server.hits[0].id == client.hits[0].id == QUERIES[query]
        # the same RRF score for every document (documents tied on it may come in either order)
        assert {h.id: h.score for h in server.hits} == pytest.approx(
            {h.id: h.score for h in client.hits}
        ), query
    # auto with nothing stored fuses the sparse leg's hybrids by zscore, on the client
    assert searcher.search("capital of france", legs=legs, k=1).fusion == "zscore"


def test_three_legs_on_a_basic_licence(es_server, flat_sparse_index, tiny, splade):
    """Through the proxy answering as a basic-licence cluster: auto fuses the three legs on
    the client without sending the rrf retriever; fusion='server' fails in one line."""
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
            searcher = Searcher(client, flat_sparse_index, tiny, sparse_encoder=splade)
            auto = searcher.search("capital of france", legs="keyword,knn,sparse", k=3)
            assert (auto.fusion, auto.hits[0].id) == ("zscore", "paris")
            assert {"keyword", "knn", "sparse"} <= set(auto.hits[0].scores)
            with pytest.raises(SearchError, match=r"enterprise or trial licence; .* basic"):
                searcher.search("capital", legs="keyword,knn,sparse", fusion="server", k=3)
            assert rule.refused == {}  # nothing licensed was even tried
        finally:
            client.close()
