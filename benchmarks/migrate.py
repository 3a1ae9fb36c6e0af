"""Model migration: its cost against plain indexing, and search while it runs.

    python -m benchmarks.migrate [--docs 1000] [--beir DIR]   (ES_URL: a real cluster)

SciFact documents are indexed behind an alias with the packaged MiniLM in CLS pooling (the "old
model": another contract, the same encoding cost), then, in one run:
1. plain `Indexer` of the same documents with the new model (MiniLM, mean pooling) - baseline;
2. `migrate` of the alias to the new model (backfill from stored text, write freeze + catch-up,
   atomic swap) while a thread searches the alias (hybrid) with a two-encoder Searcher.
Prints the migrate / plain time ratio and, for the searches, how many ran, errors, empty
results and p50/p95 during the migration against the same searches before it.
"""

from __future__ import annotations

import argparse
import json
import os
import threading
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import SCIFACT
from es_semantic import Encoder, Indexer, Searcher, migrate
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_client
from es_semantic.evaluation.data import beir_paths, load_queries
from es_semantic.evaluation.metrics import percentile


def search_loop(searcher: Searcher, queries: list[str], stop: threading.Event, out: dict) -> None:  # type: ignore[type-arg]
    i = 0
    while not stop.is_set():
        started = time.perf_counter()
        try:
            hits = searcher.search(queries[i % len(queries)], mode="hybrid", k=10).hits
            out["ms"].append((time.perf_counter() - started) * 1000)
            out["empty"] += not hits
        except Exception as exc:  # counted, and the first one shown
            out["errors"].append(repr(exc)[:200])
        i += 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", default=str(SCIFACT))
    parser.add_argument("--docs", type=int, default=1000)
    args = parser.parse_args()
    corpus_path, queries_path, _ = beir_paths(args.beir, "test")
    with open(corpus_path, encoding="utf-8") as handle:
        docs = [json.loads(line) for _, line in zip(range(args.docs), handle, strict=False)]
    docs = [{"id": d["_id"], "title": d["title"], "text": d["text"]} for d in docs]
    queries = list(load_queries(queries_path).values())[:50]
    old_enc, new_enc = Encoder(pooling="cls"), Encoder()
    with resolve_server() as server:
        es = make_client(server.config)
        print(f"server: {server.description}; {len(docs)} documents", flush=True)
        tag = os.getpid()
        alias, old, plain = f"bench-migrate-{tag}", f"bench-migrate-{tag}-v1", f"bench-plain-{tag}"
        made: list[str] = [old, plain]
        try:
            Indexer(es, old, old_enc, index_options="flat", chunking="none").index(docs)
            es.indices.put_alias(index=old, name=alias)
            started = time.perf_counter()
            Indexer(es, plain, new_enc, index_options="flat", chunking="none").index(docs)
            plain_s = time.perf_counter() - started

            searcher = Searcher(es, alias, [old_enc, new_enc])
            for q in queries[:3]:  # warm up: contract, licence probe, first encode
                searcher.search(q, mode="hybrid", k=10)
            idle: dict = {"ms": [], "empty": 0, "errors": []}  # type: ignore[type-arg]
            for q in queries[:20]:
                t0 = time.perf_counter()
                idle["empty"] += not searcher.search(q, mode="hybrid", k=10).hits
                idle["ms"].append((time.perf_counter() - t0) * 1000)
            during: dict = {"ms": [], "empty": 0, "errors": []}  # type: ignore[type-arg]
            stop = threading.Event()
            loop = threading.Thread(target=search_loop, args=(searcher, queries, stop, during))
            loop.start()
            started = time.perf_counter()
            try:
                report = migrate(es, alias, new_enc, index_options="flat")
            finally:
                stop.set()
                loop.join()
            migrate_s = time.perf_counter() - started
            made.append(report.new_index)
        finally:
            for name in made:
                es.options(ignore_status=404).indices.delete(index=name)
    copy = report.copy
    assert copy is not None
    print(f"plain index with the new model: {plain_s:.1f} s")
    print(
        f"migrate (backfill {copy.encoded} encoded, catch-up "
        f"{report.catch_up.encoded if report.catch_up else 0} encoded, swap): {migrate_s:.1f} s "
        f"-> ratio {migrate_s / plain_s:.2f}"
    )
    p50_idle, p50 = percentile(idle["ms"], 0.5), percentile(during["ms"], 0.5)
    print(
        f"searches during the migration: {len(during['ms'])} ok, {len(during['errors'])} errors, "
        f"{during['empty']} empty; p50 {p50:.0f} ms / p95 {percentile(during['ms'], 0.95):.0f} ms "
        f"vs idle p50 {p50_idle:.0f} ms (ratio {p50 / p50_idle:.2f})"
    )
    if during["errors"]:
        print(f"first error: {during['errors'][0]}")


if __name__ == "__main__":
    main()
