"""The one step protocol: every client method it names exists on both clients, an HTTP error
comes back as a value, anything else is thrown into the steps, local work runs inline (sync),
in a thread or awaited (async)."""

from __future__ import annotations

import asyncio
import threading

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import ApiError, AsyncElasticsearch, Elasticsearch

from es_semantic.elastic.calls import APIS, Answer, Call, Steps, Work, run, run_async


def _api_error(status: int) -> ApiError:
    meta = ApiResponseMeta(status, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "x", 9200))
    return ApiError("refused", meta, {"error": {"type": "x"}})


class _Client:
    """Answers ``info`` with a body, ``indices.exists`` with an HTTP error, ``mget`` by
    failing in transport; an async twin below."""

    def __init__(self) -> None:
        self.indices = self

    def info(self) -> dict:
        return {"version": {"number": "8.19.0"}}

    def exists(self, index: str) -> bool:
        raise _api_error(404)

    def mget(self, **kwargs: object) -> dict:
        raise ConnectionError("reset")


class _AsyncClient(_Client):
    async def info(self) -> dict:  # type: ignore[override]
        return super().info()

    async def exists(self, index: str) -> bool:  # type: ignore[override]
        return super().exists(index)

    async def mget(self, **kwargs: object) -> dict:  # type: ignore[override]
        return super().mget(**kwargs)


def _steps(log: list) -> Steps[str]:
    info = yield Call("info")
    log.append(info.raise_for_error()["version"]["number"])
    missing = yield Call("indices.exists", {"index": "docs"})
    log.append(missing.status)
    work = yield Work(lambda: threading.current_thread().name, None)
    log.append(work.body)
    try:
        yield Call("mget", {"index": "docs", "ids": ["a"]})
    except ConnectionError as exc:  # thrown in at the yield: the steps may account and re-raise
        log.append(str(exc))
    return "done"


@pytest.mark.parametrize("api", APIS)
def test_every_named_api_exists_on_both_clients(api):
    for client in (Elasticsearch("http://127.0.0.1:1"), AsyncElasticsearch("http://127.0.0.1:1")):
        target = client
        for part in api.split("."):
            target = getattr(target, part)
        assert callable(target), (type(client).__name__, api)


def test_run_answers_values_errors_and_work():
    log: list = []
    assert run(_Client(), _steps(log)) == "done"
    assert log == ["8.19.0", 404, threading.current_thread().name, "reset"]


def test_run_async_runs_work_in_a_thread_or_awaits_it():
    log: list = []
    assert asyncio.run(run_async(_AsyncClient(), _steps(log))) == "done"
    assert log[:2] == ["8.19.0", 404] and log[3] == "reset"
    assert log[2] != threading.current_thread().name  # a worker thread, not the loop's

    async def awaited() -> str:
        return "awaited"

    def one() -> Steps[object]:
        return (yield Work(lambda: "in a thread", awaited)).body

    assert asyncio.run(run_async(_AsyncClient(), one())) == "awaited"
    assert run(_Client(), one()) == "in a thread"


def test_an_answer_raises_its_error_when_asked_for_the_body():
    assert Answer({"a": 1}).raise_for_error() == {"a": 1} and Answer({}).status == 200
    with pytest.raises(ApiError):
        Answer(error=_api_error(409)).raise_for_error()
