"""The retrievers' async methods with only a sync Searcher: the search runs in a worker thread,
so the event loop keeps serving other tasks meanwhile (a blocked loop stalls a whole app)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from typing import Any

from es_semantic.schema.contract import IndexContract
from es_semantic.search.searcher import Searcher
from es_semantic.types import Hit, SearchResult
from tests.needs import need_module

need_module("langchain_core.retrievers", "the langchain extra is not installed")
need_module("llama_index.core.base.base_retriever", "the llama-index extra is not installed")

from es_semantic.integrations import langchain as lc_shell  # noqa: E402
from es_semantic.integrations import llama_index as li_shell  # noqa: E402

CONTRACT = IndexContract(
    model_name="m", model_fingerprint="f", pooling="mean", normalize=True, max_length=128,
    query_prefix="", document_prefix="", dims=4, text_fields=("text",), metadata_fields={},
)  # fmt: skip
SEARCH_S = 0.4


class SlowSearcher(Searcher):
    """A sync searcher whose search blocks its thread for SEARCH_S (no cluster: the point is
    where the blocking call runs)."""

    def __init__(self) -> None:  # no client, no encoder
        self.index = "docs"

    def search(self, query: str, **options: Any) -> SearchResult:  # type: ignore[override]
        time.sleep(SEARCH_S)
        return SearchResult("hybrid", [Hit("d1", 1.0, {"text": f"about {query}"})])

    def contract(self) -> IndexContract:
        return CONTRACT


def loop_ticks_while(call: Awaitable[Any]) -> tuple[Any, int]:
    """What ``call`` returns, and how often a 10 ms ticker ran on the loop meanwhile."""

    async def main() -> tuple[Any, int]:
        ticks = 0

        async def ticker() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.create_task(ticker())
        await asyncio.sleep(0)
        try:
            return await call, ticks
        finally:
            task.cancel()

    return asyncio.run(main())


def test_llama_index_aretrieve_with_a_sync_searcher_does_not_block_the_loop() -> None:
    retriever = li_shell.ESSemanticRetriever(SlowSearcher())
    nodes, ticks = loop_ticks_while(retriever.aretrieve("tea"))
    assert [n.node.node_id for n in nodes] == ["d1"] and nodes[0].node.get_content() == "about tea"
    assert ticks >= 5, f"the loop ran {ticks} times in {SEARCH_S} s: the search blocked it"


def test_langchain_ainvoke_with_a_sync_searcher_does_not_block_the_loop() -> None:
    retriever = lc_shell.ESSemanticRetriever(searcher=SlowSearcher())
    documents, ticks = loop_ticks_while(retriever.ainvoke("tea"))
    assert [d.id for d in documents] == ["d1"] and documents[0].page_content == "about tea"
    assert ticks >= 5, f"the loop ran {ticks} times in {SEARCH_S} s: the search blocked it"
