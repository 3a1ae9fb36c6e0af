"""The two doors measured: the MCP search tool's and the retrievers' overhead over
Searcher.search (p50, one query, in-process), and SciFact nDCG@10 of our LangChain retriever
against langchain-elasticsearch's ElasticsearchStore (dense and hybrid) with the same MiniLM
model, each also tried on a basic-licence 8.19 (through tests/integration/basic_cluster.py).

    python -m benchmarks.doors [--docs 5183] [--queries 300] [--repeats 40] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import SCIFACT
from benchmarks.machine import machine
from es_semantic import AsyncSearcher, Encoder, Indexer, Searcher
from es_semantic.config import ESConfig
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_client
from es_semantic.evaluation.data import load_qrels, load_queries
from es_semantic.evaluation.metrics import ndcg_at
from tests.integration.basic_cluster import BasicCluster
from tests.integration.fault_proxy import fault_proxy

OURS, THEIRS = "bench-doors-ours", "bench-doors-lc-es"
QUERY = "vitamin D deficiency and bone fractures in older adults"


def p50_ms(fn: Callable[[], Any], repeats: int) -> float:
    runs = []
    for _ in range(repeats):
        started = time.perf_counter()
        fn()
        runs.append((time.perf_counter() - started) * 1000)
    return statistics.median(runs)


def overheads(es: Any, config: ESConfig, encoder: Encoder, repeats: int) -> dict[str, float]:
    """What each door adds to the search it wraps, per call: the door's wall time minus the
    wrapped ``search`` call's own, timed inside the same call (so the server's and the model's
    noise cancel); p50 over ``repeats`` calls of one query (hybrid, k=10)."""
    from mcp import Client

    from es_semantic.integrations.langchain import ESSemanticRetriever as LCRetriever
    from es_semantic.integrations.llama_index import ESSemanticRetriever as LIRetriever
    from es_semantic.mcp_server.run import McpOptions, running_tools
    from es_semantic.mcp_server.server import build_server
    from es_semantic.service.settings import ServiceConfig

    inner: list[float] = []

    def timed(searcher: Any) -> Any:
        search = searcher.search

        def sync_search(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return search(*a, **k)
            finally:
                inner.append((time.perf_counter() - started) * 1000)

        async def async_search(*a: Any, **k: Any) -> Any:
            started = time.perf_counter()
            try:
                return await search(*a, **k)
            finally:
                inner.append((time.perf_counter() - started) * 1000)

        searcher.search = async_search if isinstance(searcher, AsyncSearcher) else sync_search
        return searcher

    searcher = timed(Searcher(es, OURS, encoder))
    options = {"mode": "hybrid", "k": 10, "fusion": "rrf"}
    doors: dict[str, Callable[[], Any]] = {
        "langchain": LCRetriever(searcher=searcher, **options).invoke,
        "llama_index": LIRetriever(searcher, **options).retrieve,  # type: ignore[arg-type]
    }
    added: dict[str, list[float]] = {name: [] for name in [*doors, "mcp"]}
    search_ms: list[float] = []

    def measure(name: str, wall: float) -> None:
        added[name].append(wall - inner[-1])
        search_ms.append(inner[-1])

    for name, door in doors.items():
        door(QUERY)  # warm up
        for _ in range(repeats):
            started = time.perf_counter()
            door(QUERY)
            measure(name, (time.perf_counter() - started) * 1000)

    async def mcp_calls() -> None:
        mcp_options = McpOptions(ServiceConfig(indices=(OURS,)))
        async with running_tools(config, encoder, None, mcp_options) as tools:
            timed(tools.searchers[OURS])
            async with Client(build_server(tools)) as client:
                args = {"query": QUERY, "index": OURS, "mode": "hybrid", "k": 10}
                await client.call_tool("search", args)  # warm up
                for _ in range(repeats):
                    started = time.perf_counter()
                    await client.call_tool("search", args)
                    measure("mcp", (time.perf_counter() - started) * 1000)

    asyncio.run(mcp_calls())
    out = {f"{name}_overhead_p50_ms": round(statistics.median(v), 3) for name, v in added.items()}
    out["search_p50_ms"] = round(statistics.median(search_ms), 1)
    return out


class MiniLMEmbeddings:
    """Our encoder as LangChain Embeddings (the same model on both sides)."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return self.encoder.encode_documents(texts).tolist()  # type: ignore[no-any-return]

    def embed_query(self, text: str) -> list[float]:
        return self.encoder.encode_queries([text])[0].tolist()  # type: ignore[no-any-return]


def ndcg(retrieve: Callable[[str], list[str]], queries: dict[str, str],
         qrels: dict[str, dict[str, int]]) -> float:  # fmt: skip
    return round(statistics.mean(ndcg_at(retrieve(text), qrels.get(qid, {}), 10)
                                 for qid, text in queries.items()), 4)  # fmt: skip


def side_by_side(es: Any, config: ESConfig, encoder: Encoder, docs: list[dict[str, Any]],
                 queries: dict[str, str], qrels: dict[str, dict[str, int]]) -> dict[str, Any]:  # fmt: skip
    """nDCG@10 of each contender, and whether it answers on a basic-licence 8.19."""
    from langchain_core.embeddings import Embeddings
    from langchain_elasticsearch import DenseVectorStrategy, ElasticsearchStore

    from es_semantic.integrations.langchain import ESSemanticRetriever

    embeddings = type("Emb", (MiniLMEmbeddings, Embeddings), {})(encoder)
    started = time.perf_counter()
    texts = [f"{d['title']} {d['text']}".strip() for d in docs]
    store = ElasticsearchStore(THEIRS, embedding=embeddings, client=es,
                               strategy=DenseVectorStrategy())  # fmt: skip
    for i in range(0, len(docs), 500):
        store.add_texts(texts[i : i + 500], metadatas=[{"doc_id": d["id"]} for d in docs[i : i + 500]],
                        ids=[d["id"] for d in docs[i : i + 500]])  # fmt: skip
    theirs_seconds = time.perf_counter() - started

    def stores(client: Any) -> dict[str, Any]:
        return {
            "lc_es_dense": ElasticsearchStore(THEIRS, embedding=embeddings, client=client,
                                              strategy=DenseVectorStrategy()),
            "lc_es_hybrid": ElasticsearchStore(THEIRS, embedding=embeddings, client=client,
                                               strategy=DenseVectorStrategy(hybrid=True)),
            "lc_es_hybrid_no_rrf": ElasticsearchStore(
                THEIRS, embedding=embeddings, client=client,
                strategy=DenseVectorStrategy(hybrid=True, rrf=False)),
        }  # fmt: skip

    def ours(client: Any) -> dict[str, Any]:
        searcher = Searcher(client, OURS, encoder)
        doors = {f"es_semantic_{mode}": ESSemanticRetriever(searcher=searcher, mode=mode, k=10)
                 for mode in ("hybrid", "knn", "keyword")}  # fmt: skip
        # the fusion auto chose before #30 (RRF, k=60, top 100 per leg), for comparison
        doors["es_semantic_hybrid_rrf"] = ESSemanticRetriever(searcher=searcher, k=10,
                                                              fusion="rrf")  # fmt: skip
        return doors

    def ids_of(name: str, door: Any) -> Callable[[str], list[str]]:
        if name.startswith("lc_es"):
            return lambda q: [d.metadata["doc_id"] for d in door.similarity_search(q, k=10)]
        return lambda q: [d.id for d in door.invoke(q)]

    report: dict[str, Any] = {"lc_es_index_seconds": round(theirs_seconds, 1)}
    for name, door in {**ours(es), **stores(es)}.items():
        report[name] = {"ndcg@10": ndcg(ids_of(name, door), queries, qrels)}
    rule = BasicCluster(config.url or "")
    with fault_proxy(config.url or "", rule, forward_headers=rule.forward_headers) as proxy:
        basic = make_client(ESConfig(url=proxy.url))
        for name, door in {**ours(basic), **stores(basic)}.items():
            try:
                got = ids_of(name, door)(QUERY)
                report[name]["basic_licence"] = f"works ({len(got)} hits)"
            except Exception as exc:  # what a user on a basic licence sees
                report[name]["basic_licence"] = f"fails: {type(exc).__name__}: {str(exc)[:160]}"
        basic.close()
    return report


def select_docs(limit: int, relevant: set[str]) -> list[dict[str, Any]]:
    """SciFact's corpus, or (``limit``) every document relevant to the chosen queries plus
    the first others in corpus order up to ``limit`` documents in all."""
    lines = (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line) for line in lines]
    docs = [{"id": str(d["_id"]), "title": d.get("title", ""), "text": d.get("text", "")}
            for d in docs]  # fmt: skip
    if not limit:
        return docs
    others = max(limit - len(relevant), 0)
    return [d for d in docs if d["id"] in relevant] + [d for d in docs if d["id"] not in relevant][
        :others
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=0,
                        help="corpus size: the queries' relevant documents + the first others "
                        "(0: the whole corpus)")  # fmt: skip
    parser.add_argument("--queries", type=int, default=0, help="first N test queries (0: all)")
    parser.add_argument("--repeats", type=int, default=40)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    qrels = load_qrels(SCIFACT / "qrels" / "test.tsv")
    queries = {q: t for q, t in load_queries(SCIFACT / "queries.jsonl").items() if q in qrels}
    queries = dict(list(queries.items())[: args.queries or None])
    docs = select_docs(args.docs, {d for q in queries for d in qrels[q]})
    encoder = Encoder()
    with resolve_server() as server:
        es = make_client(server.config)
        try:
            started = time.perf_counter()
            Indexer(es, OURS, encoder).index(docs)
            result: dict[str, Any] = {"server": server.description, "docs": len(docs),
                                      "queries": len(queries),
                                      "es_semantic_index_seconds":
                                          round(time.perf_counter() - started, 1)}  # fmt: skip
            result["overhead"] = overheads(es, server.config, encoder, args.repeats)
            result["scifact"] = side_by_side(es, server.config, encoder, docs, queries, qrels)
        finally:
            for name in (OURS, THEIRS):
                es.options(ignore_status=404).indices.delete(index=name)
            es.close()
    result["machine"] = machine()
    print(json.dumps(result, indent=None if args.json else 2))


if __name__ == "__main__":
    main()
