"""The test server itself: chosen in order, answers, and a raw kNN round trip works."""

import subprocess
import sys
from pathlib import Path

import pytest

from es_semantic.demo.server import docker_engine_answers
from es_semantic.demo.server import testcontainers_server as start_testcontainers_es


def test_dense_vector_bulk_and_knn(es, index_name):
    es.indices.create(
        index=index_name,
        mappings={
            "properties": {
                "text": {"type": "text"},
                "emb": {"type": "dense_vector", "dims": 3, "similarity": "cosine", "index": True},
            }
        },
    )
    docs = {"a": [1.0, 0.0, 0.0], "b": [0.0, 1.0, 0.0], "c": [0.7, 0.7, 0.1]}
    ops = []
    for doc_id, vector in docs.items():
        ops += [{"index": {"_index": index_name, "_id": doc_id}}, {"text": doc_id, "emb": vector}]
    resp = es.bulk(operations=ops, refresh=True)
    assert not resp["errors"]
    hits = es.search(
        index=index_name,
        knn={"field": "emb", "query_vector": [0.1, 1.0, 0.0], "k": 2, "num_candidates": 10},
    )["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["b", "c"]


def test_testcontainers_path():
    ok, reason = docker_engine_answers()
    if not ok:
        pytest.skip(f"testcontainers Elasticsearch path not exercised: {reason}")
    from es_semantic.elastic.client import make_client

    with start_testcontainers_es() as handle:
        client = make_client(handle.config)
        assert client.info()["version"]["number"].startswith("8.")


def test_unreachable_es_url_fails_fast_with_one_line(tmp_path):
    env = {"ES_URL": "http://127.0.0.1:1", "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-m",
            "integration",
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/integration/test_server.py::test_dense_vector_bulk_and_knn",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )
    assert proc.returncode != 0
    expected = (
        "Elasticsearch at http://127.0.0.1:1 is not reachable: cannot connect (connection refused)"
    )
    assert expected in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr


def test_local_server_listens_on_loopback_only(es_server):
    if es_server.kind != "noida-db":
        pytest.skip("only the server es-semantic starts itself is checked")
    port = int(es_server.config.url.rsplit(":", 1)[1])
    listening = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.rsplit(":", 1)
            if state == "0A" and int(port_hex, 16) == port:  # 0A = LISTEN
                listening.append(address)
    assert listening, f"nothing listens on port {port}"
    # 0100007F is 127.0.0.1 in /proc's little-endian hex; any other address would be reachable
    assert set(listening) == {"0100007F"}, listening
