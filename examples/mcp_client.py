"""An agent's side of `es-semantic mcp`: the MCP SDK's client starts the server over stdio,
lists its tools, reads the index's metadata fields, then searches with a filter.

    python mcp_client.py INDEX "QUERY" [--filter lang=en]

The server gets this shell's connection and model (ES_URL, ES_API_KEY, ..., ES_SEMANTIC_MODEL).
Needs: pip install 'es-semantic[mcp]'.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys

from mcp import Client, StdioServerParameters

PASSED = ("ES_", "HF_", "PATH", "HOME", "TOKENIZERS_PARALLELISM")


async def run(index: str, query: str, filters: dict[str, str]) -> None:
    env = {k: v for k, v in os.environ.items() if k.startswith(PASSED)}
    server = StdioServerParameters(
        command=sys.executable, args=["-m", "es_semantic.cli", "mcp", "--index", index], env=env
    )
    async with Client(server, read_timeout_seconds=120) as client:
        tools = await client.list_tools()
        print("tools:", ", ".join(t.name for t in tools.tools))
        listed = await client.call_tool("list_indices", {})
        fields = json.loads(listed.content[0].text)["indices"][0]["metadata_fields"]
        print("metadata fields:", json.dumps(fields))
        found = await client.call_tool("search", {"query": query, "index": index, "k": 3,
                                                  "filters": filters or None})  # fmt: skip
        if found.is_error:
            raise SystemExit(found.content[0].text)
        for hit in json.loads(found.content[0].text)["hits"]:
            print(f"[{hit['id']}] ranks {hit['ranks']}: {hit['snippet']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index")
    parser.add_argument("query")
    parser.add_argument("--filter", action="append", default=[], help="FIELD=VALUE")
    args = parser.parse_args()
    filters = dict(spec.split("=", 1) for spec in args.filter)
    asyncio.run(run(args.index, args.query, filters))


if __name__ == "__main__":
    main()
