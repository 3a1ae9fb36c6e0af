"""The service as an exposed component: CORS with keys, caps, open routes as `serve --help`
says, no secret in a crash's log or a worker's environment."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest

from es_semantic import CrossEncoder, Encoder, Indexer
from es_semantic.config import ESConfig
from tests.integration.test_service import KEY, call, running, serve_process

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
from es_semantic.service.app import ServiceConfig, create_app

ORIGIN = "https://app.example"
SECRET = "pw-9f3Kq7ZxLm2"


@pytest.fixture
def indexed(es, index_name, tiny):
    docs = ["search engine vector index", "banana cherry river", "python code test"]
    Indexer(es, index_name, tiny, chunking="none").index(
        [{"id": str(i), "text": t} for i, t in enumerate(docs)]
    )
    return index_name


def raw(url: str, method: str, headers: dict[str, str], data=None) -> tuple[int, dict, str]:
    request = urllib.request.Request(url, data=data, headers=headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return (
                resp.status,
                {k.lower(): v for k, v in resp.headers.items()},
                resp.read().decode(),
            )
    except urllib.error.HTTPError as err:
        return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read().decode()


def header(headers: dict, name: str) -> str | None:
    return {k.lower(): v for k, v in headers.items()}.get(name.lower())


def test_cors_preflight_passes_with_keys_and_real_calls_still_need_one(tiny):
    config = ServiceConfig(api_keys=(KEY,), cors_origins=(ORIGIN,))
    with running(create_app(tiny, config=config)) as url:
        status, headers, _ = raw(f"{url}/embed", "OPTIONS", {
            "Origin": ORIGIN, "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type"})  # fmt: skip
        assert status == 200 and headers.get("access-control-allow-origin") == ORIGIN
        assert "authorization" in headers.get("access-control-allow-headers", "").lower()
        body = json.dumps({"inputs": "cat"}).encode()
        plain = {"Origin": ORIGIN, "Content-Type": "application/json"}
        status, headers, _ = raw(f"{url}/embed", "POST", plain, body)
        assert status == 401 and headers.get("access-control-allow-origin") == ORIGIN
        status, _, _ = raw(f"{url}/embed", "POST", {**plain, "X-API-Key": KEY}, body)
        assert status == 200


def test_a_body_over_the_limit_is_413_with_or_without_a_length(tiny):
    with running(create_app(tiny, config=ServiceConfig(max_body_bytes=2_000))) as url:
        big = json.dumps({"inputs": ["cat " * 100] * 10}).encode()
        assert len(big) > 2_000
        status, body, _ = call(f"{url}/embed", {"inputs": ["cat " * 100] * 10})
        assert status == 413 and "2000 bytes" in body["error"], body
        chunked = {"Content-Type": "application/json", "Transfer-Encoding": "chunked"}
        status, _, text = raw(f"{url}/embed", "POST", chunked, iter([big[:1500], big[1500:]]))
        assert status == 413 and "2000 bytes" in text
        assert call(f"{url}/embed", {"inputs": ["cat"]})[0] == 200


def test_a_body_that_does_not_arrive_in_time_is_408_and_frees_its_slot(tiny):
    """A client that sends its headers and part of a body, then stalls, held a connection
    (one of --max-connections) for as long as it liked: it is answered 408 and closed."""
    with running(create_app(tiny, config=ServiceConfig(max_body_seconds=1))) as url:
        host, port = url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as slow:
            slow.sendall(b"POST /embed HTTP/1.1\r\nHost: x\r\nContent-Type: application/json"
                         b"\r\nContent-Length: 100\r\n\r\n{\"inputs\": ")  # fmt: skip
            started = time.monotonic()
            answer = slow.recv(4096).decode()
            took = time.monotonic() - started
        assert answer.startswith("HTTP/1.1 408"), answer
        assert "1 s" in answer and took < 5, (answer, took)
        assert call(f"{url}/embed", {"inputs": ["cat"]})[0] == 200  # a whole body still passes


@pytest.mark.parametrize(
    ("param", "value", "limit"),
    [("k", 51, "max_k"), ("window", 201, "max_window"),
     ("num_candidates", 301, "max_num_candidates"), ("rerank_top", 41, "max_rerank_top")],
)  # fmt: skip
def test_search_parameters_over_the_service_maximum_are_refused(
    es_server, indexed, tiny, tiny_cross_encoder_dir, param, value, limit
):
    config = ServiceConfig(max_k=50, max_window=200, max_num_candidates=300, max_rerank_top=40)
    app = create_app(tiny, config=config, es_config=es_server.config,
                     reranker=CrossEncoder(tiny_cross_encoder_dir))  # fmt: skip
    with running(app) as url:
        search = f"{url}/indices/{indexed}/search"
        base = {"query": "vector search", "mode": "knn", "rerank": param == "rerank_top"}
        status, body, _ = call(search, {**base, param: value})
        assert status == 422 and f"{param}={value}" in body["error"], body
        assert str(value - 1) in body["error"]  # names the limit
        assert call(search, {**base, param: value - 1})[0] == 200


def test_rerank_query_length_is_capped(tiny, tiny_cross_encoder_dir):
    app = create_app(tiny, config=ServiceConfig(max_chars=100),
                     reranker=CrossEncoder(tiny_cross_encoder_dir))  # fmt: skip
    with running(app) as url:
        status, body, _ = call(f"{url}/rerank", {"query": "x" * 101, "texts": ["cat"]})
        assert status == 413 and "query" in body["error"] and "100" in body["error"], body
        assert call(f"{url}/rerank", {"query": "x" * 100, "texts": ["cat"]})[0] == 200


class GatedEncoder(Encoder):
    """Query encoding waits for ``gate`` (a search held in flight)."""

    entered = threading.Event()
    gate = threading.Event()

    def encode_queries(self, texts):  # type: ignore[no-untyped-def]
        type(self).entered.set()
        type(self).gate.wait(20)
        return super().encode_queries(texts)


def test_search_and_rerank_beyond_the_concurrency_limit_get_429(
    es_server, indexed, tiny_st_dir, tiny_cross_encoder_dir
):
    app = create_app(GatedEncoder(tiny_st_dir), config=ServiceConfig(max_concurrent=1),
                     es_config=es_server.config,
                     reranker=CrossEncoder(tiny_cross_encoder_dir))  # fmt: skip
    first: list = []
    with running(app) as url:
        search = f"{url}/indices/{indexed}/search"
        held = threading.Thread(target=lambda: first.append(
            call(search, {"query": "vector", "mode": "knn"})))  # fmt: skip
        held.start()
        try:
            assert GatedEncoder.entered.wait(20)
            status, body, headers = call(search, {"query": "river", "mode": "keyword"})
            assert status == 429 and header(headers, "Retry-After") == "1", body
            status, _, headers = call(f"{url}/rerank", {"query": "q", "texts": ["cat"]})
            assert status == 429 and header(headers, "Retry-After") == "1"
        finally:
            GatedEncoder.gate.set()
            held.join(30)
        assert first and first[0][0] == 200
        assert call(search, {"query": "river", "mode": "keyword"})[0] == 200  # freed again


def test_the_searcher_cache_is_bounded_and_unknown_names_do_not_grow_it(
    es, es_server, index_name, tiny
):
    names = [f"{index_name}-{i}" for i in range(3)]
    for name in names:
        Indexer(es, name, tiny, chunking="none").index([{"id": "1", "text": "cat"}])
    app = create_app(tiny, config=ServiceConfig(max_searchers=2), es_config=es_server.config)
    with running(app) as url:
        for i in range(5):
            status, _, _ = call(f"{url}/indices/{index_name}-missing-{i}/search",
                                {"query": "cat", "mode": "keyword"})  # fmt: skip
            assert status == 409
        assert len(app.state.service.searchers) == 0
        for name in names:
            assert (
                call(f"{url}/indices/{name}/search", {"query": "cat", "mode": "keyword"})[0] == 200
            )
        assert list(app.state.service.searchers) == names[1:]  # the least recent one left


def test_open_routes_are_what_serve_help_says(tiny):
    """Every GET route without a key answers 200 exactly when `serve --help` names it as open."""
    from es_semantic.cli.serve_cmd import serve_cmd

    (option,) = [p for p in serve_cmd.params if p.name == "api_key_file"]
    said_open = set(re.findall(r"(/[a-z./]*)", option.help or ""))
    assert "/healthz" in said_open
    app = create_app(tiny, config=ServiceConfig(api_keys=(KEY,)))
    gets = sorted({r.path for r in app.routes if "GET" in getattr(r, "methods", ())
                   and "{" not in r.path})  # fmt: skip
    with running(app) as url:
        behaviour = {path: call(f"{url}{path}")[0] for path in gets}
        assert call(f"{url}/embed", {"inputs": "cat"})[0] == 401
    really_open = {path for path, status in behaviour.items() if status != 401}
    assert really_open == said_open, (behaviour, option.help)
    assert {"/docs", "/openapi.json"} & really_open, "the docs' openness is decided and said"


class CrashingEncoder(Encoder):
    def encode_documents(self, texts, **options):  # type: ignore[no-untyped-def]
        raise RuntimeError(f"backend failed, connection elastic:{SECRET}@db.internal")


def test_a_crash_in_a_route_logs_no_secret(tiny_st_dir):
    records: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(logging.Formatter().format(record))

    handler = Keep(logging.DEBUG)
    loggers = [logging.getLogger(n) for n in ("", "uvicorn", "uvicorn.error", "es_semantic")]
    es_config = ESConfig(url="http://127.0.0.1:9", username="elastic", password=SECRET)
    app = create_app(CrashingEncoder(tiny_st_dir), es_config=es_config)
    with running(app) as url:
        for logger in loggers:  # after uvicorn configured its loggers (which drops handlers)
            logger.addHandler(handler)
        try:
            status, body, _ = call(f"{url}/embed", {"inputs": "cat"})
        finally:
            for logger in loggers:
                logger.removeHandler(handler)
    assert status == 500 and SECRET not in json.dumps(body)
    text = "\n".join(records)
    assert "RuntimeError" in text, "the crash is logged"
    assert SECRET not in text, text[-1500:]


def test_worker_processes_get_no_password_in_their_environment(es_server, tiny_st_dir, tiny):
    """`serve --workers 2 --password ...`: the workers' environments hold no secret, and they
    still reach the cluster with the parent's settings."""
    import signal

    options = ("--workers", "2", "--username", "elastic", "--password", SECRET)
    with serve_process(es_server, tiny_st_dir, *options, ready_within=90) as (proc, url, _):
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(children) >= 2, children
        for child in children:
            environ = Path(f"/proc/{child}/environ").read_bytes()
            assert SECRET.encode() not in environ, f"worker {child} holds the password"
        status, ready, _ = call(f"{url}/readyz")
        assert status == 200 and ready["status"] == "ready", ready
        status, vectors, _ = call(f"{url}/embed", {"inputs": ["cat dog"]})
        assert status == 200
        np.testing.assert_allclose(vectors, tiny.encode_documents(["cat dog"]), atol=1e-6)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) in (0, -signal.SIGTERM)
