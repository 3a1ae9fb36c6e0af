"""The MCP server's tools as an agent calls them (the SDK's own client, in memory; the tools'
logic stubbed: the cluster side is tests/integration/test_mcp.py): arguments of the wrong
shape are refused in one sentence naming the argument and what it takes."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from tests.needs import need_module

need_module("mcp", "the mcp extra is not installed")
from mcp import Client  # noqa: E402

from es_semantic.mcp_server.limits import McpLimits  # noqa: E402
from es_semantic.mcp_server.server import build_server  # noqa: E402


class StubTools:
    limits = McpLimits()
    indices = ("docs",)

    async def search(self, *arguments: Any) -> dict[str, Any]:
        return {"arguments": list(arguments)}

    async def get_document(self, *arguments: Any) -> dict[str, Any]:
        return {"arguments": list(arguments)}


def call(name: str, arguments: dict[str, Any]) -> Any:
    async def main() -> Any:
        async with Client(build_server(StubTools())) as client:  # type: ignore[arg-type]
            return await client.call_tool(name, arguments)

    return asyncio.run(main())


@pytest.mark.parametrize(
    ("name", "arguments", "named"),
    [
        ("search", {"query": "", "index": "docs"}, "query"),
        ("search", {"index": "docs"}, "query"),
        ("search", {"query": "x", "index": "docs", "mode": "fuzzy"}, "keyword, knn or hybrid"),
        ("search", {"query": "x", "index": "docs", "k": "five"}, "k"),
        ("search", {"query": "x", "index": "docs", "filters": {"a": {"near": 1}}}, "gte"),
        ("search", {"query": "x", "index": "docs", "filters": {"a": [[1]]}}, "filters"),
        ("search", {"query": "x", "index": "docs", "rerank": "maybe"}, "rerank"),
        ("get_document", {"index": "docs", "id": ""}, "id"),
    ],
)  # fmt: skip
def test_arguments_of_the_wrong_shape_are_one_sentence(name, arguments, named) -> None:
    result = call(name, arguments)
    text = result.content[0].text
    assert result.is_error and named in text
    assert "\n" not in text and len(text) < 400 and "pydantic" not in text, text


def test_arguments_of_the_right_shape_reach_the_tool() -> None:
    result = call("search", {"query": "x", "index": "docs", "k": 3})
    assert not result.is_error and '"x"' in result.content[0].text
