"""Faults caused for real: the server process killed in the middle of an indexing run."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest
from elasticsearch import helpers

from es_semantic import Encoder, Indexer, IndexingError
from es_semantic.demo.server import free_loopback_port, noida_server
from es_semantic.elastic.client import make_client
from es_semantic.indexing.actions import content_hash
from es_semantic.indexing.readers import FieldSpec, to_document
from tests.integration.test_indexing import corpus


@pytest.fixture
def own_server_dir(tmp_path, es_server):
    if es_server.kind != "noida-db":
        pytest.skip("kills and restarts a local noida-db process; ES_URL clusters are left alone")
    return tmp_path / "data"


def test_server_killed_mid_run_then_resumed_exactly_once(own_server_dir, tiny_st_dir):
    own_server_dir.mkdir()
    port = free_loopback_port()
    docs = corpus(1500)
    killed = threading.Event()
    with noida_server(own_server_dir, port) as server:
        es = make_client(server.config)

        def killing_stream():
            for i, doc in enumerate(docs):
                if i == 700 and not killed.is_set():
                    os.kill(server.pid, signal.SIGKILL)
                    killed.set()
                yield doc

        first_encoder = Encoder(tiny_st_dir)
        Indexer(es, "crash", first_encoder, batch_size=100).index(docs[:300])
        # noida-db writes its store to disk about once a second, while Elasticsearch's translog
        # makes an acknowledged write durable at once: wait out the emulator's window for the seed.
        time.sleep(3)
        with pytest.raises(IndexingError, match="re-run the same command to resume"):
            Indexer(es.options(max_retries=1), "crash", first_encoder, batch_size=100).index(
                killing_stream()
            )
        es.close()
    assert killed.is_set()
    with noida_server(own_server_dir, port) as server:
        es = make_client(server.config)
        es.indices.refresh(index="crash")
        survived = es.count(index="crash")["count"]
        assert 300 <= survived < len(docs)
        encoder = Encoder(tiny_st_dir)
        report = Indexer(es, "crash", encoder, batch_size=100).index(docs)
        assert report.skipped == survived and report.encoded == len(docs) - survived
        assert report.failed == 0
        stored = {
            h["_id"]: h["_source"]["content_hash"]
            for h in helpers.scan(es, index="crash", _source=["content_hash"])
        }
        contract = Indexer(es, "crash", encoder).ensure_index()
        spec = FieldSpec(None, contract.text_fields, ())
        expected = {d["id"]: content_hash(to_document(d, spec, "t"), contract) for d in docs}
        assert stored == expected  # every id once, with the content of the input
        assert es.count(index="crash")["count"] == len(docs)
        es.close()
