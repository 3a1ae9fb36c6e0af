"""The learned sparse leg against a real ES-API server (and the basic-licence proxy):
SPLADE-tiny vectors written by every indexer, the contract checked, and searched."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from elasticsearch import BadRequestError, Elasticsearch

from es_semantic import IndexContractError, Indexer
from es_semantic.encoding.sparse import SparseEncoder
from es_semantic.indexing.async_indexer import AsyncIndexer
from es_semantic.schema.contract import IndexContract, escape_vector
from tests.sparse_models import splade_tiny_dir

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
