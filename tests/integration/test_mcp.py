"""`es-semantic mcp` as agents run it, driven by the MCP SDK's own client: over stdio (the
agent starts the command) and over streamable HTTP (API keys), against the test server."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from es_semantic import Indexer
from es_semantic.demo.server import free_loopback_port
from tests.needs import need_module

mcp = need_module("mcp", "the mcp extra is not installed")
jsonschema = need_module("jsonschema", "the mcp extra installs it")
from mcp import Client, StdioServerParameters  # noqa: E402
from mcp.client.stdio import stdio_client  # noqa: E402

DOCS = [
    {"id": "kiwi", "title": "Kiwi orchards", "text": "kiwi fruit grows on vines in orchards",
     "lang": "en", "year": 2021},
    {"id": "apfel", "title": "Apfelbäume", "text": "apple trees grow in cold orchards",
     "lang": "de", "year": 2019},
    {"id": "rust", "title": "Rust borrow checker", "text": "the borrow checker proves memory "
     "safety at compile time", "lang": "en", "year": 2023},
    {"id": "tea", "title": "Green tea", "text": "green tea leaves are steamed then dried",
     "lang": "en", "year": 2020},
    {"id": "kiwi-fr", "title": "Kiwis", "text": "kiwi fruit grows on vines near the sea",
     "lang": "fr", "year": 2022},
]  # fmt: skip
SECRET = "bWNwLXNlY3JldC1hcGkta2V5LTQy"
HTTP_KEY = "mcp-agent-key-7f3e1b"


@pytest.fixture
def mcp_index(es, index_name, tiny) -> str:
    report = Indexer(es, index_name, tiny, chunking="none",
                     metadata_fields={"lang": "keyword", "year": "long"}).index(DOCS)  # fmt: skip
    assert report.indexed == len(DOCS)
    return index_name


def command(es_url: str, model: Path, index: str, *extra: str) -> list[str]:
    return ["-m", "es_semantic.cli", "mcp", "--index", index, "--model", str(model),
            "--es-url", es_url, *extra]  # fmt: skip


def payload(result: Any) -> Any:
    """A tool result's JSON (the text content the SDK sends beside structured content)."""
    assert result.content, result
    text = result.content[0].text
    return text if result.is_error else json.loads(text)


async def check_tools(
    client: Any, index: str, absent: str | None = None, rerank: bool = False
) -> list[Any]:
    """What both transports must show; returns every result, for the secrets check."""
    listed = await client.list_tools()
    tools = {t.name: t for t in listed.tools}
    assert set(tools) == {"search", "get_document", "list_indices", "explain"}
    for tool in tools.values():
        jsonschema.validators.validator_for(tool.input_schema).check_schema(tool.input_schema)
        assert tool.description and tool.annotations.read_only_hint is True
    search_schema = tools["search"].input_schema
    assert search_schema["properties"]["k"]["maximum"] == 50
    assert search_schema["properties"]["index"]["enum"] == [index, *([absent] if absent else [])]
    assert search_schema["required"] == ["query", "index"]
    results = []

    async def call(name: str, **arguments: Any) -> Any:
        result = await client.call_tool(name, arguments)
        results.append(result)
        return result

    listed_indices = payload(await call("list_indices"))["indices"]
    if absent:  # an allowed index that is missing is listed with why, the others still are
        assert listed_indices[1]["index"] == absent
        assert "does not exist" in listed_indices[1]["error"]
    described = listed_indices[0]
    assert described["index"] == index and described["documents"] == len(DOCS)
    assert described["metadata_fields"]["lang"]["type"] == "keyword"
    assert sorted(described["metadata_fields"]["lang"]["values"]) == ["de", "en", "fr"]
    assert (described["metadata_fields"]["year"]["min"], described["metadata_fields"]["year"]
            ["max"]) == (2019, 2023)  # fmt: skip

    found = payload(await call("search", query="borrow checker memory", index=index,
                               mode="keyword", k=3))  # fmt: skip
    first = found["hits"][0]
    assert first["id"] == "rust" and first["title"] == "Rust borrow checker"
    assert "borrow checker" in first["passage"] and first["ranks"] == {"keyword": 1}
    hybrid = payload(await call("search", query="kiwi fruit vines", index=index, k=5))
    assert {h["id"] for h in hybrid["hits"][:2]} == {"kiwi", "kiwi-fr"}
    assert (
        set(hybrid["hits"][0]["ranks"]) <= {"keyword", "knn"} and hybrid["fusion"] == "adaptive"
    )  # auto

    # a filter restricts: French only, then a range
    french = payload(await call("search", query="kiwi fruit vines", index=index, mode="keyword",
                                k=5, filters={"lang": "fr"}))  # fmt: skip
    assert [h["id"] for h in french["hits"]] == ["kiwi-fr"]
    recent = payload(await call("search", query="kiwi fruit", index=index, mode="keyword",
                                filters={"year": {"gte": 2022}}))  # fmt: skip
    assert [h["id"] for h in recent["hits"]] == ["kiwi-fr"]

    doc = payload(await call("get_document", index=index, id="tea"))
    assert doc["texts"]["text"].startswith("green tea") and doc["metadata"]["lang"] == "en"
    why = payload(await call("explain", query="borrow checker memory", index=index, id="rust",
                             mode="keyword"))  # fmt: skip
    assert why["found"] and why["rank"] == 1 and why["legs"]["keyword"]["rank"] == 1

    # refusals: one sentence each, naming what to do
    refused = await call("search", query="kiwi", index="other-index")
    assert refused.is_error and "not served here" in payload(refused)
    assert index in payload(refused)
    too_long = await call("search", query="kiwi " * 400, index=index)
    assert too_long.is_error and "the limit is 1000" in payload(too_long)
    too_many = await call("search", query="kiwi", index=index, k=51)
    assert too_many.is_error and "k=51 must be from 1 to 50" in payload(too_many)
    reranked = await call("search", query="kiwi fruit", index=index, mode="keyword", rerank=True)
    if rerank:  # the server's cross-encoder scored the pool
        body = payload(reranked)
        assert body["reranked"] and all("rerank" in h["scores"] for h in body["hits"])
    else:
        assert reranked.is_error and "no reranker" in payload(reranked)
    bad_field = await call("search", query="kiwi", index=index, filters={"colour": "green"})
    assert bad_field.is_error and "filterable fields are lang, year" in payload(bad_field)
    return results


def test_mcp_over_stdio(es_server, mcp_index, tiny_st_dir, tmp_path):
    """The SDK's stdio client starts `es-semantic mcp`; the cluster needs an API key and quotes
    it back in an error (as some proxies do): no result and no log line carries it."""
    from tests.integration.fault_proxy import echo_credentials, fault_proxy

    errlog = tmp_path / "stderr.txt"

    async def scenario(url: str) -> list[Any]:
        params = StdioServerParameters(
            command=sys.executable, args=command(url, tiny_st_dir, mcp_index, "--api-key", SECRET),
            env={"HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}, cwd=os.getcwd(),
        )  # fmt: skip
        with errlog.open("w") as err:
            async with Client(stdio_client(params, errlog=err), read_timeout_seconds=60) as client:
                results = await check_tools(client, mcp_index)
                echoed = await client.call_tool("search", {"query": "ECHO-ME", "index": mcp_index})
                assert echoed.is_error and "***" in payload(echoed)
                return [*results, echoed]

    with fault_proxy(es_server.config.url, echo_credentials(f"ApiKey {SECRET}")) as proxy:
        results = asyncio.run(scenario(proxy.url))
    assert proxy.injected >= 1
    for result in results:
        assert SECRET not in result.model_dump_json()
    assert SECRET not in errlog.read_text()


@contextlib.contextmanager
def http_server(es_url: str, model: Path, index: str, key_file: Path, *extra: str) -> Iterator[str]:
    port = free_loopback_port()
    log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in the finally below
    proc = subprocess.Popen([sys.executable, *command(es_url, model, index, "--index",
                             f"{index}-absent", "--transport", "http",
                             "--port", str(port), "--api-key-file", str(key_file), *extra)],
                            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}/mcp"
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            if status_of(url) == 401:
                break
            time.sleep(0.2)
        assert proc.poll() is None, "es-semantic mcp --transport http exited"
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def status_of(url: str, key: str | None = None) -> int | None:
    headers = {"Content-Type": "application/json", "Accept": "application/json, text/event-stream"}
    if key:
        headers["Authorization"] = f"Bearer {key}"
    body = json.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/list"}).encode()
    try:
        with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as err:
        return err.code
    except OSError:
        return None


def test_mcp_over_http_needs_an_api_key(
    es_server, mcp_index, tiny_st_dir, tiny_cross_encoder_dir, tmp_path
):
    import httpx2
    from mcp.client.streamable_http import streamable_http_client

    key_file = tmp_path / "keys.txt"
    key_file.write_text(f"{HTTP_KEY}\n")

    async def scenario(url: str) -> None:
        headers = {"Authorization": f"Bearer {HTTP_KEY}"}
        async with (
            httpx2.AsyncClient(headers=headers, timeout=60) as http,
            Client(streamable_http_client(url, http_client=http)) as client,
        ):
            await check_tools(client, mcp_index, f"{mcp_index}-absent", rerank=True)

    rerank = ("--rerank", str(tiny_cross_encoder_dir))
    with http_server(es_server.config.url, tiny_st_dir, mcp_index, key_file, *rerank) as url:
        assert status_of(url) == 401 and status_of(url, "wrong-key") == 401
        asyncio.run(scenario(url))


def test_http_without_keys_is_a_usage_error(es_server, tiny_st_dir):
    done = subprocess.run([sys.executable, *command(es_server.config.url, tiny_st_dir, "docs",
                                                    "--transport", "http")],
                          capture_output=True, text=True, timeout=60)  # fmt: skip
    assert done.returncode == 2 and "--api-key-file" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_library_caller_s_log_handlers_are_masked_too(es_server, tiny):
    """``serve`` called from code that configured no logging: the SDK's server then adds its
    own stderr handler (``logging.basicConfig``), after the masking was put on the root's
    handlers; every handler that ends up on the root must mask the secrets."""
    from es_semantic.mcp_server.run import McpOptions, running_tools
    from es_semantic.mcp_server.server import build_server
    from es_semantic.redact import RedactingFilter
    from es_semantic.service.settings import ServiceConfig

    options = McpOptions(ServiceConfig(indices=("docs",), api_keys=("agent-key-4f1a9c",)))
    root = logging.getLogger()
    saved = root.handlers[:]
    root.handlers[:] = []  # as in a program that configured none (pytest adds its own)

    async def scenario() -> dict[logging.Handler, bool]:
        async with running_tools(es_server.config, tiny, None, options) as tools:
            build_server(tools, ["agent-key-4f1a9c"])
            return {h: any(isinstance(f, RedactingFilter) for f in h.filters)
                    for h in root.handlers}  # fmt: skip

    try:
        masked = asyncio.run(scenario())
    finally:
        root.handlers[:] = saved
    assert masked, "nothing would print the server's log"
    assert all(masked.values()), masked
