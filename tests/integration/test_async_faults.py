"""The async indexer under the same faults as the sync one: a rejected bulk item, 429
rejections, the server killed in the middle of a run (then resumed exactly once)."""

from __future__ import annotations

import asyncio
import gc
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


@pytest.mark.parametrize("producer_error", ["server", "encoder"])
def test_a_consumer_that_fails_while_the_producer_fails_has_its_error_retrieved(
    es, es_server, index_name, tiny, monkeypatch, producer_error
):
    """Both sides of the queue fail (the server dies under a bulk and under the next lookup, or
    the encoder breaks meanwhile): the run ends with one error and the bulk task's error is
    retrieved, not left for the garbage collector to print into the next command's output."""
    from elastic_transport import ConnectionError as TransportConnectionError

    from es_semantic.indexing import async_indexer

    consumer_died = asyncio.Event()

    async def failing_bulk(*args, **kwargs):
        consumer_died.set()
        raise TransportConnectionError("bulk: connection reset")
        yield  # an async generator, like the real helper

    real_actions = async_indexer.AsyncIndexer._batch_actions
    calls = []

    async def second_batch_fails_after_the_consumer(self, batch, contract, run):
        calls.append(1)
        if len(calls) == 2:
            await consumer_died.wait()
            await asyncio.sleep(0)  # the consumer task finishes with its error
            if producer_error == "server":
                raise TransportConnectionError("lookup: connection reset")
            raise RuntimeError("the encoder broke")
        return await real_actions(self, batch, contract, run)

    monkeypatch.setattr(async_indexer, "async_streaming_bulk", failing_bulk)
    monkeypatch.setattr(async_indexer.AsyncIndexer, "_batch_actions",
                        second_batch_fails_after_the_consumer)  # fmt: skip
    unretrieved = []

    async def go():
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: unretrieved.append(ctx))
        aes = make_async_client(es_server.config)
        try:
            with pytest.raises(IndexingError) as raised:
                await AsyncIndexer(aes, index_name, tiny, batch_size=10, chunking="none").index(
                    corpus(30)
                )
            return raised.value.report
        finally:
            await aes.close()

    report = asyncio.run(go())
    gc.collect()  # a finished task whose error nobody read reports it when it is collected
    assert len(calls) == 2
    assert report.failed + report.indexed + report.skipped == report.total
    assert [c["message"] for c in unretrieved] == []
