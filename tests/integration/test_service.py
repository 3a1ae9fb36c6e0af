"""es-semantic serve over HTTP on loopback: real clients (openai, plain HTTP) against a real
uvicorn server, searching the real ES-API server."""

from __future__ import annotations

import contextlib
import json
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator

import numpy as np
import pytest

from es_semantic import CrossEncoder, Indexer, Searcher
from es_semantic.config import ESConfig
from es_semantic.demo.server import free_loopback_port

uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is not installed")
from es_semantic.service.app import ServiceConfig, create_app  # noqa: E402

KEY = "svc-key-4f9a2c"


@contextlib.contextmanager
def running(app) -> Iterator[str]:
    """The app on a free loopback port, in a thread; stopped (requests drained) afterwards."""
    port = free_loopback_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "the service did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def call(url: str, body: dict | None = None, key: str | None = None) -> tuple[int, object, dict]:
    headers = {"Content-Type": "application/json"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            raw = resp.read().decode()
            status, headers_out = resp.status, dict(resp.headers)
    except urllib.error.HTTPError as err:
        raw, status, headers_out = err.read().decode(), err.code, dict(err.headers)
    try:
        return status, json.loads(raw), headers_out
    except ValueError:
        return status, raw, headers_out


@pytest.fixture
def served(es, es_server, index_name, tiny, tiny_cross_encoder_dir):
    docs = [{"id": str(i), "text": t} for i, t in enumerate(
        ["search engine vector index", "banana cherry river", "python code test",
         "cat dog bird fish", "music film book paper"])]  # fmt: skip
    Indexer(es, index_name, tiny, chunking="none").index(docs)
    config = ServiceConfig(indices=(index_name,), api_keys=(KEY,), max_inputs=4)
    app = create_app(tiny, config=config, es_config=es_server.config,
                     reranker=CrossEncoder(tiny_cross_encoder_dir))  # fmt: skip
    with running(app) as url:
        yield url, index_name


def test_the_openai_client_gets_the_encoder_vectors(served, tiny):
    openai = pytest.importorskip("openai")
    url, _ = served
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY)
    texts = ["search engine", "a cat and a dog", "python code"]
    response = client.embeddings.create(input=texts, model="tiny")  # base64 on the wire
    got = np.array([d.embedding for d in sorted(response.data, key=lambda d: d.index)])
    assert np.allclose(got, tiny.encode_documents(texts), atol=1e-6)
    status, body, _ = call(f"{url}/v1/embeddings", {"input": "search engine",
                                                    "encoding_format": "float"}, KEY)  # fmt: skip
    assert status == 200 and body["object"] == "list" and body["usage"]["total_tokens"] == 2
    assert np.allclose(body["data"][0]["embedding"], tiny.encode_documents(["search engine"])[0],
                       atol=1e-6)  # fmt: skip


def test_tei_embed_and_rerank_shapes(served, tiny, tiny_cross_encoder_dir):
    url, _ = served
    status, vectors, _ = call(f"{url}/embed", {"inputs": ["cat dog", "river"]}, KEY)
    assert status == 200 and len(vectors) == 2 and len(vectors[0]) == tiny.dim
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    too_long = " ".join(["search"] * 600)
    status, body, _ = call(f"{url}/embed", {"inputs": too_long}, KEY)
    assert status == 413 and "truncate=true" in body["error"]
    assert call(f"{url}/embed", {"inputs": too_long, "truncate": True}, KEY)[0] == 200
    texts = ["cat dog", "search engine", "river"]
    status, ranked, _ = call(f"{url}/rerank", {"query": "search", "texts": texts,
                                               "return_text": True}, KEY)  # fmt: skip
    expected = CrossEncoder(tiny_cross_encoder_dir).score("search", texts)
    assert status == 200 and [r["index"] for r in ranked] == list(np.argsort(-expected))
    assert [r["text"] for r in ranked] == [texts[r["index"]] for r in ranked]


def test_search_and_info_match_the_library(served, es, tiny):
    url, index = served
    status, body, _ = call(f"{url}/indices/{index}/search",
                           {"query": "vector search", "mode": "knn", "k": 3}, KEY)  # fmt: skip
    expected = Searcher(es, index, tiny).search("vector search", mode="knn", k=3)
    assert status == 200 and [h["id"] for h in body["hits"]] == [h.id for h in expected.hits]
    assert body["mode"] == "knn" and "took_ms" in body
    assert body["encoder"] == tiny.config.ran()  # the backend and precision that ran
    assert body["encoder"]["precision"] == tiny.precision
    status, info, _ = call(f"{url}/indices/{index}", key=KEY)
    assert status == 200 and info["count"] == 5 and info["contract"]["dims"] == tiny.dim
    assert info["encoder"] == tiny.config.ran()
    # an index not named at start cannot be reached; bad parameters are a 4xx naming them
    assert call(f"{url}/indices/other/search", {"query": "x"}, KEY)[0] == 404
    status, body, _ = call(f"{url}/indices/{index}/search", {"query": "x", "k": 0}, KEY)
    assert status == 400 and "k=0" in body["error"]
    assert call(f"{url}/indices/{index}/search", {"query": "x", "bogus": 1}, KEY)[0] == 422


def test_auth_limits_health_and_metrics(served):
    url, _ = served
    assert call(f"{url}/embed", {"inputs": "cat"})[0] == 401
    assert call(f"{url}/embed", {"inputs": "cat"}, "wrong-key")[0] == 401
    assert call(f"{url}/healthz")[0] == 200  # open: probes carry no key
    status, ready, _ = call(f"{url}/readyz")
    assert status == 200 and ready["status"] == "ready"
    assert set(ready["encoder"]) == {"model", "backend", "quantize", "precision"}
    status, body, _ = call(f"{url}/embed", {"inputs": ["a"] * 5}, KEY)
    assert status == 413 and "limit is 4" in body["error"]
    status, text, _ = call(f"{url}/metrics", key=KEY)
    assert status == 200 and 'es_semantic_requests_total{route="/embed",status="401"}' in text
    assert "es_semantic_batch_texts_bucket" in text and "es_semantic_queue_depth" in text


def test_secrets_never_reach_a_response(es, es_server, index_name, tiny):
    """The cluster quotes our credential back in an error: the service's answer masks it."""
    from tests.integration.fault_proxy import echo_credentials, fault_proxy

    Indexer(es, index_name, tiny, chunking="none").index([{"id": "1", "text": "cat"}])
    secret = "c3ZjLXNlY3JldC05ODc2"
    with fault_proxy(es_server.config.url, echo_credentials(f"ApiKey {secret}")) as proxy:
        app = create_app(tiny, es_config=ESConfig(url=proxy.url, api_key=secret))
        with running(app) as url:
            status, body, _ = call(f"{url}/indices/{index_name}/search",
                                   {"query": "ECHO-ME", "mode": "keyword"})  # fmt: skip
    assert proxy.injected >= 1 and status == 502
    assert "Authorization: ***" in body["error"] and secret not in json.dumps(body)


@contextlib.contextmanager
def serve_process(es_server, model, *options: str, ready_within: float = 60):
    """`es-semantic serve` as users run it, in a subprocess on a free port, waited for until
    /healthz answers; yields (process, url, output) — ``output`` holds the process's output
    once it has ended (killed if a test left it running)."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    port = free_loopback_port()
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "es_semantic.cli", "serve", "--port", str(port), "--model",
         str(model), "--es-url", es_server.config.url or "", *options],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    output: list[str] = []
    try:
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                if call(f"{url}/healthz")[0] == 200:
                    break
            time.sleep(0.2)
        yield proc, url, output
    finally:
        if proc.poll() is None:  # a failed test: its worker processes go too (they hold stdout)
            children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
            pids = children.read_text().split() if children.exists() else []
            proc.kill()
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(int(pid), signal.SIGKILL)
        if proc.stdout:
            output.append(proc.stdout.read().decode())
            proc.stdout.close()


def test_cli_serve_drains_a_request_in_flight_on_sigterm(es_server, tiny_st_dir):
    """`es-semantic serve` as users run it; SIGTERM while a request waits in the batcher (a
    2 s batching window): the request still gets its answer, then the process exits (uvicorn
    re-raises the signal after its graceful shutdown: status -SIGTERM)."""
    import signal

    answers: list = []
    with serve_process(es_server, tiny_st_dir, "--max-wait-ms", "2000") as (proc, url, output):
        caller = threading.Thread(target=lambda: answers.append(
            call(f"{url}/embed", {"inputs": ["cat dog"]})))  # fmt: skip
        caller.start()
        time.sleep(0.5)  # the request now waits in the batching window
        proc.send_signal(signal.SIGTERM)
        caller.join(timeout=30)
        assert proc.wait(timeout=30) in (0, -signal.SIGTERM)
    assert answers, output[0][-2000:]
    ((status, vectors, _),) = answers
    assert status == 200 and len(vectors) == 1, output[0][-2000:]


def test_cli_serve_with_two_worker_processes(es_server, tiny_st_dir, tiny):
    """`serve --workers 2`: two worker processes share the port, each answers with the
    encoder's vectors; SIGTERM stops them all."""
    import signal
    from pathlib import Path

    with serve_process(es_server, tiny_st_dir, "--workers", "2", ready_within=90) as (
        proc, url, _output,
    ):  # fmt: skip
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        workers = [c for c in children if "es_semantic" in Path(f"/proc/{c}/cmdline").read_text()
                   or "multiprocessing" in Path(f"/proc/{c}/cmdline").read_text()]  # fmt: skip
        assert len(workers) >= 2, children
        texts = ["cat dog", "search engine", "red apple"]
        for _ in range(6):  # new connections, spread over the workers by the kernel
            status, vectors, _ = call(f"{url}/embed", {"inputs": texts})
            assert status == 200
            np.testing.assert_allclose(np.array(vectors), tiny.encode_documents(texts), atol=1e-6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
