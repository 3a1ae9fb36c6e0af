"""The async indexer under the same faults as the sync one: a rejected bulk item, 429
rejections, the server killed in the middle of a run (then resumed exactly once)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import threading
import time

import pytest
from elasticsearch import helpers

from es_semantic import AsyncIndexer, Encoder, IndexingError
from es_semantic.config import ESConfig
from es_semantic.demo.server import free_loopback_port, noida_server
from es_semantic.elastic.client import make_async_client, make_client
from es_semantic.indexing import batch as batch_module
from tests.integration.fault_proxy import fault_proxy, reject_first_bulks
from tests.integration.test_faults import own_server_dir  # noqa: F401 - fixture
from tests.integration.test_indexing import corpus


def index_async(config: ESConfig, index: str, encoder: Encoder, docs, **options):
    async def go():
        aes = make_async_client(config)
        try:
            return await AsyncIndexer(aes, index, encoder, **options).index(docs)
        finally:
            await aes.close()

    return asyncio.run(go())


def test_async_bulk_item_rejected_by_the_server_is_dead_lettered(
    es, es_server, index_name, tiny, tmp_path, monkeypatch
):
    real = batch_module.to_action

    def wrong_length_for_doc_7(index, doc_id, doc, digest, vector, contract, *rest):
        action = real(index, doc_id, doc, digest, vector, contract, *rest)
        if doc_id == "doc-7":
            action["_source"]["embedding"] = action["_source"]["embedding"][:5]
        return action

    monkeypatch.setattr(batch_module, "to_action", wrong_length_for_doc_7)
    dead = tmp_path / "dead.jsonl"
    report = index_async(es_server.config, index_name, tiny, corpus(20), dead_letter=dead,
                         chunking="none")  # fmt: skip
    assert (report.indexed, report.failed, report.total) == (19, 1, 20)
    (letter,) = [json.loads(x) for x in dead.read_text().splitlines()]
    assert letter["document"]["id"] == "doc-7" and "number of dimensions" in letter["reason"]


def test_async_429s_are_retried_and_nothing_is_lost(es, es_server, index_name, tiny):
    with fault_proxy(es_server.config.url, reject_first_bulks(3, 429)) as proxy:
        report = index_async(
            ESConfig(url=proxy.url), index_name, tiny, corpus(200), chunk_size=50,
            initial_backoff=0.05, max_backoff=0.2,
        )  # fmt: skip
    assert proxy.injected == 3
    assert (report.indexed, report.failed) == (200, 0)
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == 200


def test_async_server_killed_mid_run_then_resumed_exactly_once(own_server_dir, tiny):  # noqa: F811
    own_server_dir.mkdir()
    port = free_loopback_port()
    docs = corpus(1200)
    killed = threading.Event()
    with noida_server(own_server_dir, port) as server:
        index_async(server.config, "crash", tiny, docs[:300], batch_size=100)
        time.sleep(3)  # noida-db persists about once a second (see test_faults)

        def killing_stream():
            for i, doc in enumerate(docs):
                if i == 600 and not killed.is_set():
                    os.kill(server.pid, signal.SIGKILL)
                    killed.set()
                yield doc

        with pytest.raises(IndexingError, match="re-run the same command to resume"):
            index_async(server.config, "crash", tiny, killing_stream(), batch_size=100)
    assert killed.is_set()
    with noida_server(own_server_dir, port) as server:
        es = make_client(server.config)
        es.indices.refresh(index="crash")
        survived = es.count(index="crash")["count"]
        assert 300 <= survived < len(docs)
        report = index_async(server.config, "crash", tiny, docs, batch_size=100)
        assert (report.skipped, report.encoded, report.failed) == (
            survived, len(docs) - survived, 0
        )  # fmt: skip
        es.indices.refresh(index="crash")
        ids = [h["_id"] for h in helpers.scan(es, index="crash", _source=False)]
        assert sorted(ids) == sorted(d["id"] for d in docs)  # every document once
        es.close()
