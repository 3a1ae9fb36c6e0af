"""Load: concurrent async clients issue mixed keyword/kNN/hybrid searches while an indexing run
goes on, against the local server (loopback only; bounded in time).

    python -m benchmarks.load [--clients 32] [--seconds 60] [--docs 2000]

Prints throughput, latency p50/p95/p99, the error count (goal 0) and the client's RSS over time
(goal: no growth trend). The local ES-API server answers one request at a time, so latency here
is queueing on the emulator, not Elasticsearch's.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import SCIFACT, rss_mib, scifact_passages
from es_semantic import AsyncSearcher, Encoder, Indexer
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_async_client, make_client
from es_semantic.evaluation.data import load_queries
from es_semantic.evaluation.metrics import percentile

MODES = ("keyword", "knn", "hybrid")


async def client_loop(
    searcher: AsyncSearcher,
    queries: list[str],
    offset: int,
    deadline: float,
    latencies: list[float],
    errors: list[str],
) -> None:
    i = offset
    while time.monotonic() < deadline:
        mode = MODES[i % len(MODES)]
        started = time.perf_counter()
        try:
            await searcher.search(queries[i % len(queries)], mode=mode, k=10)  # type: ignore[arg-type]
            latencies.append((time.perf_counter() - started) * 1000)
        except Exception as exc:  # counted and reported, the loop goes on
            errors.append(f"{mode}: {type(exc).__name__}: {exc}")
        i += 1


async def run_load(config, encoder, index, queries, clients, seconds):  # type: ignore[no-untyped-def]
    aes = make_async_client(config)
    searcher = AsyncSearcher(
        aes,
        index,
        encoder,
    )
    await searcher.search("warm up", mode="hybrid")
    latencies: list[float] = []
    errors: list[str] = []
    samples = [rss_mib()]
    deadline = time.monotonic() + seconds

    async def sample_memory() -> None:
        while time.monotonic() < deadline:
            await asyncio.sleep(max(1.0, seconds / 6))
            samples.append(rss_mib())

    started = time.perf_counter()
    await asyncio.gather(
        sample_memory(),
        *(client_loop(searcher, queries, n, deadline, latencies, errors) for n in range(clients)),
    )
    elapsed = time.perf_counter() - started
    await aes.close()
    return latencies, errors, samples, elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--docs", type=int, default=2000)
    args = parser.parse_args()
    from tests.tiny_models import build_tiny_bert

    queries = list(load_queries(SCIFACT / "queries.jsonl").values())
    texts = scifact_passages(args.docs * 2)
    with tempfile.TemporaryDirectory() as tmp, resolve_server() as server:
        encoder = Encoder(build_tiny_bert(Path(tmp) / "tiny"))  # the load is on the server
        es = make_client(server.config)
        print(f"server: {server.description}; {args.clients} async clients for {args.seconds:.0f}s")
        Indexer(es, "bench-load", encoder, chunking="none").index(
            {"id": str(i), "text": t} for i, t in enumerate(texts[: args.docs])
        )
        background = {"report": None}

        def index_more() -> None:  # the concurrent indexing run
            docs = ({"id": f"more-{i}", "text": t} for i, t in enumerate(texts[args.docs :]))
            background["report"] = Indexer(
                make_client(server.config), "bench-load", encoder, batch_size=64
            ).index(docs)

        writer = threading.Thread(target=index_more)
        writer.start()
        latencies, errors, samples, elapsed = asyncio.run(
            run_load(server.config, encoder, "bench-load", queries, args.clients, args.seconds)
        )
        writer.join()
        report = background["report"]
        es.indices.delete(index="bench-load")
        es.close()
    print(
        f"  searches: {len(latencies)} in {elapsed:.1f}s = {len(latencies) / elapsed:.1f}/s; errors {len(errors)} (goal 0)"
    )
    print(
        f"  latency ms: p50 {percentile(latencies, 0.5):.0f}  p95 {percentile(latencies, 0.95):.0f}  p99 {percentile(latencies, 0.99):.0f}"
    )
    print(
        f"  concurrent indexing: {report.indexed if report else 0} indexed, {report.failed if report else '?'} failed"
    )
    print("  client RSS MiB over time: " + " -> ".join(f"{s:.0f}" for s in samples))
    for error in errors[:5]:
        print("  error:", error)


if __name__ == "__main__":
    main()
