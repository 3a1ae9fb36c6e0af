"""The LangChain and LlamaIndex retrievers with the real framework packages: inside a minimal
chain and query engine (the retrieval step alone, no LLM), sync and async, with the
frameworks' own filter objects (AND, OR, nested); hybrid through a basic licence."""

from __future__ import annotations

import asyncio

import elasticsearch
import pytest

from es_semantic import AsyncSearcher, Indexer, Searcher
from es_semantic.elastic.client import make_async_client
from es_semantic.errors import InputError
from tests.integration.basic_cluster import BasicCluster
from tests.integration.cluster9 import Cluster9
from tests.integration.fault_proxy import fault_proxy
from tests.needs import need_module

CLIENT_MAJOR = int(elasticsearch.__versionstr__.split(".")[0])

lc_core = need_module("langchain_core", "the langchain extra is not installed")
li_core = need_module("llama_index.core", "the llama-index extra is not installed")
from langchain_core.runnables import RunnableLambda  # noqa: E402
from langchain_core.structured_query import Comparator, Comparison, Operation, Operator  # noqa: E402
from llama_index.core.vector_stores.types import (  # noqa: E402
    FilterCondition,
    FilterOperator,
    MetadataFilter,
    MetadataFilters,
)

from es_semantic.integrations import langchain as lc  # noqa: E402
from es_semantic.integrations import llama_index as li  # noqa: E402

DOCS = [
    {"id": "kiwi-en", "title": "Kiwi", "text": "kiwi fruit grows on vines", "lang": "en",
     "year": 2021},
    {"id": "kiwi-fr", "title": "Kiwi", "text": "kiwi fruit grows on vines by the sea",
     "lang": "fr", "year": 2023},
    {"id": "kiwi-de", "title": "Kiwi", "text": "kiwi fruit grows on vines in gardens",
     "lang": "de", "year": 2019},
    {"id": "tea", "title": "Tea", "text": "green tea leaves are steamed then dried", "lang": "en",
     "year": 2020},
]  # fmt: skip


@pytest.fixture
def kiwis(es, index_name, tiny) -> str:
    Indexer(es, index_name, tiny, metadata_fields={"lang": "keyword", "year": "long"}).index(DOCS)
    return index_name


def test_langchain_retriever_in_a_chain(es, kiwis, tiny):
    searcher = Searcher(es, kiwis, tiny)
    retriever = lc.ESSemanticRetriever(searcher=searcher, mode="keyword", k=3)
    chain = retriever | RunnableLambda(lambda docs: [d.metadata["id"] for d in docs])
    assert chain.invoke("green tea leaves") == ["tea"]
    docs = retriever.invoke("green tea steamed")
    expected = searcher.search("green tea steamed", mode="keyword", k=3)
    assert [d.id for d in docs] == [h.id for h in expected.hits]
    first = docs[0]
    assert first.page_content == "Tea green tea leaves are steamed then dried"  # the passage
    assert first.metadata["lang"] == "en" and first.metadata["ranks"] == {"keyword": 1}
    assert first.metadata["scores"]["keyword"] == pytest.approx(expected.hits[0].score)
    # AND / OR / nested, as LangChain's structured query writes them
    where = Operation(operator=Operator.AND, arguments=[
        Operation(operator=Operator.OR, arguments=[
            Comparison(comparator=Comparator.EQ, attribute="lang", value="fr"),
            Comparison(comparator=Comparator.EQ, attribute="lang", value="de")]),
        Comparison(comparator=Comparator.GTE, attribute="year", value=2020)])  # fmt: skip
    assert [d.id for d in retriever.invoke("kiwi fruit", filters=where)] == ["kiwi-fr"]
    with pytest.raises(InputError, match="'ne'"):
        retriever.invoke("kiwi", filters=Comparison(comparator=Comparator.NE, attribute="lang",
                                                    value="en"))  # fmt: skip


def test_langchain_retriever_async(es, es_server, kiwis, tiny):
    async def scenario() -> list[str]:
        aes = make_async_client(es_server.config)
        try:
            retriever = lc.ESSemanticRetriever(async_searcher=AsyncSearcher(aes, kiwis, tiny),
                                               mode="keyword", k=4,
                                               filters={"lang": ["en", "de"]})  # fmt: skip
            docs = await retriever.ainvoke("kiwi fruit vines")
            return [d.id for d in docs]
        finally:
            await aes.close()

    got = asyncio.run(scenario())
    assert set(got) == {"kiwi-en", "kiwi-de"}


def test_llama_index_retriever_in_a_query_engine(es, kiwis, tiny):
    from llama_index.core.llms import MockLLM
    from llama_index.core.query_engine import RetrieverQueryEngine
    from llama_index.core.response_synthesizers.no_text import NoText

    filters = MetadataFilters(filters=[
        MetadataFilters(filters=[MetadataFilter(key="lang", value="en"),
                                 MetadataFilter(key="lang", value="fr")],
                        condition=FilterCondition.OR),
        MetadataFilter(key="year", value=2022, operator=FilterOperator.LT),
    ], condition=FilterCondition.AND)  # fmt: skip
    retriever = li.ESSemanticRetriever(Searcher(es, kiwis, tiny), mode="keyword", k=3,
                                       filters=filters)  # fmt: skip
    engine = RetrieverQueryEngine(retriever, response_synthesizer=NoText(llm=MockLLM()))
    response = engine.query("kiwi fruit vines")
    assert [n.node.node_id for n in response.source_nodes] == ["kiwi-en"]
    node = response.source_nodes[0]
    assert node.node.get_content() == "Kiwi kiwi fruit grows on vines"
    assert node.node.metadata["ranks"] == {"keyword": 1} and node.score > 0
    # async: no filter, tea first for a tea query
    nodes = asyncio.run(li.ESSemanticRetriever(Searcher(es, kiwis, tiny), mode="keyword", k=2)
                        .aretrieve("green tea steamed"))  # fmt: skip
    assert nodes[0].node.node_id == "tea"
    with pytest.raises(InputError, match="or across fields"):
        li.ESSemanticRetriever(Searcher(es, kiwis, tiny), filters=MetadataFilters(
            filters=[MetadataFilter(key="lang", value="en"),
                     MetadataFilter(key="year", value=2020)],
            condition=FilterCondition.OR))  # fmt: skip


def test_hybrid_on_a_basic_licence(es, es_server, kiwis, tiny):
    """Through a proxy answering like a basic-licence cluster (the rrf retriever refused with a
    403): both retrievers' hybrid search answers, fused on the client (auto's adaptive fusion,
    nothing a basic licence refuses). The cluster is an
    8.19 for the 8.x client and a 9.1 for the 9.x client (which a real 8.19 refuses)."""
    from es_semantic.elastic.client import make_client

    basic_kind = Cluster9 if CLIENT_MAJOR >= 9 else BasicCluster
    rule = basic_kind(es_server.config.url)
    with fault_proxy(es_server.config.url, rule, forward_headers=rule.forward_headers) as proxy:
        from es_semantic.config import ESConfig

        basic = make_client(ESConfig(url=proxy.url))
        try:
            searcher = Searcher(basic, kiwis, tiny)
            docs = lc.ESSemanticRetriever(searcher=searcher, mode="hybrid", k=4).invoke(
                "green tea leaves"
            )
            nodes = li.ESSemanticRetriever(searcher, mode="hybrid", k=4).retrieve(
                "green tea leaves"
            )
            licence = searcher.cluster().license_type
        finally:
            basic.close()
    assert docs[0].id == "tea" and nodes[0].node.node_id == "tea"
    assert "adaptive" in docs[0].metadata["scores"] and set(docs[0].metadata["ranks"]) == {
        "keyword",
        "knn",
    }
    assert licence == "basic"
