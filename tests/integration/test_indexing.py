"""Indexer against the real ES-API server, with the tiny model (fast) and failure injection."""

from __future__ import annotations

import json

import numpy as np
import pytest
from elasticsearch import helpers

from es_semantic import Encoder, IndexContractError, Indexer, Searcher
from es_semantic.indexing import batch as batch_module
from es_semantic.indexing.readers import FieldSpec, read_path
from tests.tiny_models import WORDS, build_tiny_bert


def corpus(n: int, start: int = 0) -> list[dict]:
    words = [w for w in WORDS if w.isalpha()]
    return [
        {
            "id": f"doc-{i}",
            "title": f"{words[i % len(words)]} {i}",
            "text": " ".join(words[(i * 7 + j) % len(words)] for j in range(5 + i % 40)),
            "lang": "en" if i % 2 else "fr",
        }
        for i in range(start, start + n)
    ]


def test_mapping_and_contract_come_from_the_encoder(es, index_name, tiny):
    Indexer(
        es, index_name, tiny, metadata_fields={"lang": "keyword"}, chunking="none"
    ).ensure_index()
    mapping = es.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert mapping["properties"]["embedding"]["dims"] == tiny.dim == 32
    assert mapping["properties"]["embedding"]["similarity"] == "cosine"
    assert mapping["properties"]["lang"] == {"type": "keyword"}
    meta = mapping["_meta"]["es_semantic"]
    assert meta["model_fingerprint"] == tiny.config.fingerprint
    assert (meta["pooling"], meta["query_prefix"], meta["document_prefix"]) == (
        "mean",
        "query: ",
        "passage: ",
    )


def test_contract_mismatch_is_refused(es, index_name, tiny, tmp_path):
    Indexer(es, index_name, tiny).index(corpus(5))
    other = Encoder(build_tiny_bert(tmp_path / "other", seed=1), pooling="cls")
    with pytest.raises(IndexContractError, match="pooling: index 'mean', encoder 'cls'"):
        Indexer(es, index_name, other).index(corpus(5))
    with pytest.raises(IndexContractError, match="was built with"):
        Searcher(es, index_name, other).search("cat", mode="knn")


def test_thousand_documents_then_a_rerun_encodes_nothing(es, index_name, tiny_st_dir):
    docs = corpus(1000)
    first = Indexer(es, index_name, Encoder(tiny_st_dir), batch_size=128).index(docs)
    assert (first.indexed, first.skipped, first.failed, first.encoded) == (1000, 0, 0, 1000)
    assert es.count(index=index_name)["count"] == 1000
    fresh = Encoder(tiny_st_dir)
    second = Indexer(es, index_name, fresh).index(docs)
    assert (second.indexed, second.skipped, second.encoded) == (0, 1000, 0)
    assert fresh.calls == 0
    changed = [
        dict(d, text=d["text"] + " changed") if i % 100 == 0 else d for i, d in enumerate(docs)
    ]
    third = Indexer(es, index_name, fresh).index(changed)
    assert (third.indexed, third.skipped, third.encoded) == (10, 990, 10)
    assert es.count(index=index_name)["count"] == 1000


def test_malformed_lines_go_to_the_dead_letter_file(es, index_name, tiny, tmp_path):
    path = tmp_path / "corpus.jsonl"
    path.write_bytes(
        b'{"id": "1", "text": "the cat"}\n'
        b'{"id": "2", "text": "the dog"\n'
        b'{"id": "3", "text": ""}\n'
        b'{"id": "4", "text": "a bird"}\n'
        b'\xff\xfe{"id": "5"}\n'
    )
    dead = tmp_path / "dead.jsonl"
    indexer = Indexer(es, index_name, tiny, dead_letter=dead)
    report = indexer.index(read_path(str(path), None, indexer.field_spec()))
    assert (report.indexed, report.failed, report.total) == (2, 3, 5)
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert [d["source"] for d in letters] == [f"{path}:2", f"{path}:3", f"{path}:5"]
    assert "invalid JSON" in letters[0]["reason"] and "no text" in letters[1]["reason"]
    assert "invalid UTF-8" in letters[2]["reason"]
    assert es.count(index=index_name)["count"] == 2


def test_a_bulk_item_rejected_by_the_server_is_reported(
    es, index_name, tiny, tmp_path, monkeypatch
):
    real = batch_module.to_action

    def wrong_length_for_doc_7(index, doc_id, doc, digest, vector, contract, *rest):
        action = real(index, doc_id, doc, digest, vector, contract, *rest)
        if doc_id == "doc-7":
            action["_source"]["embedding"] = action["_source"]["embedding"][:5]
        return action

    monkeypatch.setattr(batch_module, "to_action", wrong_length_for_doc_7)
    dead = tmp_path / "dead.jsonl"
    report = Indexer(es, index_name, tiny, dead_letter=dead, chunking="none").index(corpus(20))
    assert (report.indexed, report.failed) == (19, 1)
    (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
    assert letter["document"]["id"] == "doc-7"
    assert letter["reason"].startswith("HTTP 400")
    assert es.count(index=index_name)["count"] == 19


def test_an_interrupted_run_resumes_to_the_exact_set(es, index_name, tiny_st_dir):
    docs = corpus(600)

    def interrupted():
        for i, doc in enumerate(docs):
            if i == 350:
                raise KeyboardInterrupt
            yield doc

    with pytest.raises(KeyboardInterrupt):
        Indexer(es, index_name, Encoder(tiny_st_dir), batch_size=100).index(interrupted())
    es.indices.refresh(index=index_name)
    done_before = es.count(index=index_name)["count"]
    assert 0 < done_before < 600
    resumed = Indexer(es, index_name, Encoder(tiny_st_dir), batch_size=100).index(docs)
    assert resumed.skipped == done_before and resumed.encoded == 600 - done_before
    stored = {
        h["_id"]: h["_source"]["content_hash"]
        for h in helpers.scan(es, index=index_name, _source=["content_hash"])
    }
    assert sorted(stored) == sorted(d["id"] for d in docs)
    assert es.count(index=index_name)["count"] == 600


def test_field_spec_follows_the_existing_index(es, index_name, tiny):
    Indexer(es, index_name, tiny, text_fields=["body"], id_field="key").ensure_index()
    spec = Indexer(es, index_name, tiny, id_field="key").field_spec()
    assert spec == FieldSpec("key", ("body",), ())


def test_async_indexer_matches_sync(es, es_server, index_name, tiny_st_dir, tmp_path):
    import asyncio

    from es_semantic import AsyncIndexer
    from es_semantic.elastic.client import make_async_client

    docs = [*corpus(300), {"id": "empty", "text": ""}]
    Indexer(es, f"{index_name}-sync", Encoder(tiny_st_dir)).index(docs)
    encoder = Encoder(tiny_st_dir)

    async def run(records):
        aes = make_async_client(es_server.config)
        try:
            return await AsyncIndexer(
                aes, index_name, encoder, batch_size=64, dead_letter=tmp_path / "d.jsonl"
            ).index(records)
        finally:
            await aes.close()

    async def agen():
        for d in docs:
            yield d

    first = asyncio.run(run(agen()))
    assert (first.indexed, first.failed, first.encoded) == (300, 1, 300)
    again = asyncio.run(run(docs))
    assert (again.indexed, again.skipped, again.encoded) == (0, 300, 0)

    def hashes(name):
        return {
            h["_id"]: h["_source"]["content_hash"]
            for h in helpers.scan(es, index=name, _source=["content_hash"])
        }

    assert hashes(index_name) == hashes(f"{index_name}-sync")


def test_writes_and_reads_through_an_alias(es, index_name, tiny):
    concrete = f"{index_name}-v1"
    Indexer(es, concrete, tiny).ensure_index()
    es.indices.put_alias(index=concrete, name=index_name)
    report = Indexer(es, index_name, tiny).index(corpus(30))
    assert report.indexed == 30
    assert es.count(index=concrete)["count"] == 30
    hits = Searcher(es, index_name, tiny).search("cat", mode="knn", k=5).hits
    assert len(hits) == 5
    again = Indexer(es, index_name, tiny).index(corpus(30))
    assert again.skipped == 30


@pytest.mark.parametrize(("status", "client_retries"), [(429, 0), (503, 3)])
def test_rejections_are_retried_and_nothing_is_lost(
    es, es_server, index_name, tiny, status, client_retries
):
    """429: the indexer's own backoff (client retries off); 503: the client's transport retries."""
    from es_semantic.config import ESConfig
    from es_semantic.elastic.client import make_client
    from tests.integration.fault_proxy import fault_proxy, reject_first_bulks

    Indexer(es, index_name, tiny).ensure_index()
    with fault_proxy(es_server.config.url, reject_first_bulks(3, status)) as proxy:
        client = make_client(ESConfig(url=proxy.url))
        report = Indexer(
            client.options(max_retries=client_retries, retry_on_status=(503,)),
            index_name,
            tiny,
            chunk_size=50,
            initial_backoff=0.05,
            max_backoff=0.2,
        ).index(corpus(200))
        client.close()
    assert proxy.injected == 3
    assert (report.indexed, report.failed) == (200, 0)
    assert es.count(index=index_name)["count"] == 200


def _expected_knn_score(similarity: str, query: np.ndarray, doc: np.ndarray) -> float:
    """The kNN score formulas Elasticsearch documents for each similarity."""
    if similarity == "cosine":
        cos = float(query @ doc / (np.linalg.norm(query) * np.linalg.norm(doc)))
        return (1 + cos) / 2
    if similarity == "dot_product":
        return (1 + float(query @ doc)) / 2
    if similarity == "l2_norm":
        return 1 / (1 + float(np.sum((query - doc) ** 2)))
    dot = float(query @ doc)  # max_inner_product
    return 1 / (1 - dot) if dot < 0 else dot + 1


@pytest.mark.parametrize("similarity", ["cosine", "dot_product", "l2_norm", "max_inner_product"])
def test_exact_knn_script_scores_like_knn_for_every_similarity(es, index_name, tiny, similarity):
    """The exact-kNN script_score is sent to the server for each similarity and must give
    the documented kNN score of every document (and rank like approximate kNN on a float
    index)."""
    from es_semantic import Searcher

    docs = corpus(30)
    Indexer(es, index_name, tiny, similarity=similarity, index_options="flat").index(docs)
    searcher = Searcher(es, index_name, tiny)
    query = "alpha beta gamma"
    exact = searcher.search(query, mode="knn", exact=True, k=30)
    approx = searcher.search(query, mode="knn", k=30)
    assert len(exact.hits) == 30
    vectors = dict(zip([d["id"] for d in docs], tiny.encode_documents(
        [f"{d['title']} {d['text']}" if d.get("title") else d["text"] for d in docs]
    ), strict=True))  # fmt: skip
    q = tiny.encode_queries([query])[0]
    for hit in exact.hits:
        expected = _expected_knn_score(similarity, q.astype(np.float64), vectors[hit.id])
        assert hit.score == pytest.approx(expected, rel=1e-4, abs=1e-5), hit.id
    assert [h.id for h in exact.hits] == [h.id for h in approx.hits]
    assert [h.score for h in exact.hits] == pytest.approx([h.score for h in approx.hits], rel=1e-4)


def test_parallel_senders_account_for_every_document_under_429s(
    es, es_server, index_name, tiny, tmp_path
):
    """Three senders, five whole-request 429s: every document indexed once, none lost."""
    from es_semantic.config import ESConfig
    from es_semantic.elastic.client import make_client
    from tests.integration.fault_proxy import fault_proxy, reject_first_bulks

    Indexer(es, index_name, tiny).ensure_index()
    with fault_proxy(es_server.config.url, reject_first_bulks(5)) as proxy:
        client = make_client(ESConfig(url=proxy.url))
        report = Indexer(
            client.options(max_retries=0), index_name, tiny, senders=3, chunk_size=20,
            batch_size=40, initial_backoff=0.05, max_backoff=0.2, dead_letter=tmp_path / "d.jsonl",
        ).index(corpus(300))  # fmt: skip
        client.close()
    assert proxy.injected == 5
    assert (report.indexed, report.failed, report.skipped) == (300, 0, 0)
    assert es.count(index=index_name)["count"] == 300
    assert not (tmp_path / "d.jsonl").exists()


def test_parallel_senders_keep_the_last_write_of_an_id(es, index_name, tiny):
    """One id written in many batches: the stored document is the last one in the input."""
    docs = []
    for round_ in range(12):
        docs += corpus(10)  # the same ten ids ...
        docs[-1] = {**docs[-1], "id": "same", "title": f"version {round_}"}
    report = Indexer(es, index_name, tiny, senders=4, batch_size=10, chunk_size=3).index(docs)
    assert report.failed == 0 and report.indexed + report.skipped == len(docs)
    assert es.get(index=index_name, id="same")["_source"]["title"] == "version 11"


@pytest.mark.parametrize("form", ["json", "base64"])
def test_vector_formats_store_the_same_vectors(es, index_name, tiny, form):
    """Vectors sent as JSON arrays or as base64 float32 (9.3+ form) are searched alike: each
    document is its own nearest neighbour with the exact self-similarity score."""
    from es_semantic.cluster import ClusterInfo, parse_version

    version = parse_version(es.info()["version"]["number"])
    if form == "base64" and not ClusterInfo("", version).accepts_base64_vectors:
        pytest.skip(f"the server reports {version}: base64 vectors are documented from 9.3")
    docs = corpus(20)
    indexer = Indexer(
        es, index_name, tiny, vector_format=form, chunking="none", index_options="flat"
    )
    assert indexer.index(docs).indexed == 20
    assert indexer.vector_format == form
    vectors = tiny.encode_documents([f"{d['title']} {d['text']}" for d in docs])
    for doc, vector in list(zip(docs, vectors, strict=True))[:5]:
        hits = es.search(index=index_name, knn={"field": "embedding", "query_vector": vector.tolist(),
                                                "k": 1, "num_candidates": 20})["hits"]["hits"]  # fmt: skip
        assert hits[0]["_id"] == doc["id"]
        assert hits[0]["_score"] == pytest.approx(1.0, abs=1e-5)  # cosine (1 + 1) / 2


def test_auto_sends_base64_vectors_to_a_9_3_cluster(es, es_server, index_name, tiny):
    """A cluster that reports 9.3 gets vectors as base64 big-endian float32 that decode to the
    encoder's vectors; the local server (8.15, which refuses that form) gets JSON arrays."""
    import base64

    from es_semantic.config import ESConfig
    from es_semantic.elastic.client import make_client
    from tests.integration.fault_proxy import fault_proxy

    bodies: list[bytes] = []

    def cluster_9_3(method, path, body, headers):
        if method == "GET" and path.split("?")[0] == "/":
            info = es.info().body
            return 200, {**info, "version": {**info["version"], "number": "9.3.0"}}
        if path.split("?")[0].endswith("/_bulk"):
            bodies.append(body)
            lines = [json.loads(line) for line in body.splitlines() if line.strip()]
            items = [{"index": {"_index": index_name, "_id": a["index"]["_id"], "status": 201,
                                "result": "created"}} for a in lines[0::2]]  # fmt: skip
            return 200, {"took": 1, "errors": False, "items": items}
        return None

    docs = corpus(6)
    with fault_proxy(es_server.config.url, cluster_9_3) as proxy:
        client = make_client(ESConfig(url=proxy.url))
        indexer = Indexer(client, index_name, tiny, chunking="none", refresh=False)
        assert indexer.index(docs).indexed == 6
        client.close()
    assert indexer.vector_format == "base64"
    lines = [json.loads(line) for body in bodies for line in body.splitlines() if line.strip()]
    sources = {a["index"]["_id"]: s for a, s in zip(lines[0::2], lines[1::2], strict=True)}
    assert sorted(sources) == sorted(d["id"] for d in docs)
    want = tiny.encode_documents([f"{d['title']} {d['text']}" for d in docs])
    for doc, vector in zip(docs, want, strict=True):
        packed = sources[doc["id"]]["embedding"]
        assert isinstance(packed, str)
        got = np.frombuffer(base64.b64decode(packed), dtype=">f4")
        np.testing.assert_array_equal(got, vector)  # exact: no float text round-trip
    local = Indexer(es, index_name + "-local", tiny, chunking="none")
    try:
        assert local.index(docs).indexed == 6 and local.vector_format == "json"
    finally:
        es.indices.delete(index=index_name + "-local", ignore_unavailable=True)
