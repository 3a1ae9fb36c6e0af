"""The bulk path's own ceiling: precomputed vectors through the real Indexer into a loopback
server that accepts ``_bulk`` and answers success (benchmarks/fake_cluster.py), so what is
measured is the client's work per document — hashing, actions, serialisation, HTTP.

    python -m benchmarks.bulk [--docs 20000] [--dim 384] [--senders 4]

Prints docs/s, client CPU per document and body bytes per document for JSON arrays vs base64
float32, the standard-library vs the orjson serializer, and 1 vs N senders; all in one run.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from benchmarks.fake_cluster import fake_cluster
from es_semantic.config import EncoderConfig
from es_semantic.encoding.encoder import Embeddings


class PrecomputedEncoder:
    """Stands in for the model: unit vectors from a pool, at no encoding cost."""

    def __init__(self, dim: int) -> None:
        rng = np.random.default_rng(0)
        pool = rng.standard_normal((4096, dim)).astype(np.float32)
        self.pool = pool / np.linalg.norm(pool, axis=1, keepdims=True)
        self.config = EncoderConfig("precomputed", "-", "precomputed", "mean", True, 256, "", "",
                                    dim)  # fmt: skip
        self.calls = 0

    @property
    def dim(self) -> int:
        return self.config.dim

    def embed(self, texts: Sequence[str], *, kind: str = "document") -> Embeddings:
        rows = np.arange(self.calls, self.calls + len(texts)) % len(self.pool)
        self.calls += len(texts)
        return Embeddings(self.pool[rows], np.zeros(len(texts), dtype=bool))


def docs(n: int) -> list[dict[str, Any]]:
    words = "search vector cluster passage science health river city music paper".split()
    return [{"id": f"doc-{i}", "title": f"{words[i % 10]} {i}",
             "text": " ".join(words[(i * 7 + j) % 10] for j in range(40))} for i in range(n)]  # fmt: skip


def run(url: str, corpus: list[dict[str, Any]], dim: int, *, vector_format: str, senders: int,
        orjson: bool, index: str) -> dict[str, float]:  # fmt: skip
    from elasticsearch import Elasticsearch

    from es_semantic.elastic.client import fast_serializer
    from es_semantic.indexing.indexer import Indexer

    es = Elasticsearch(url, **(fast_serializer() if orjson else {}))
    before = es.perform_request("GET", "/_fake/received").body
    indexer = Indexer(es, index, PrecomputedEncoder(dim), chunking="none",  # type: ignore[arg-type]
                      vector_format=vector_format, senders=senders, batch_size=512,
                      chunk_size=500, refresh=False)  # fmt: skip
    wall, cpu = time.perf_counter(), time.process_time()
    report = indexer.index(corpus)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    after = es.perform_request("GET", "/_fake/received").body
    es.close()
    assert report.indexed == len(corpus) == after["bulk_docs"] - before["bulk_docs"], report
    return {"docs_s": len(corpus) / wall, "cpu_us": cpu / len(corpus) * 1e6,
            "bytes": (after["bulk_bytes"] - before["bulk_bytes"]) / len(corpus)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=20_000)
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    corpus = docs(args.docs)
    variants = {
        "json, stdlib json, 1 sender": ("json", 1, False),
        "json, orjson, 1 sender": ("json", 1, True),
        f"json, orjson, {args.senders} senders": ("json", args.senders, True),
        "base64, orjson, 1 sender": ("base64", 1, True),
        f"base64, orjson, {args.senders} senders": ("base64", args.senders, True),
    }
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    with fake_cluster("9.3.0") as url:
        for round_ in range(args.rounds):  # interleaved rounds: noise hits every variant alike
            for n, (name, (form, senders, fast)) in enumerate(variants.items()):
                results[name].append(run(url, corpus, args.dim, vector_format=form,
                                         senders=senders, orjson=fast,
                                         index=f"bench-{round_}-{n}"))  # fmt: skip
    print(f"{args.docs} documents, {args.dim}-d vectors, loopback fake _bulk server "
          f"(child process), best of {args.rounds} interleaved rounds")  # fmt: skip
    base = max(r["docs_s"] for r in results["json, stdlib json, 1 sender"])
    print(f"  {'variant':<34} {'docs/s':>9} {'ratio':>6} {'client CPU/doc':>15} {'body/doc':>9}")
    for name, runs in results.items():
        best = max(runs, key=lambda r: r["docs_s"])
        print(f"  {name:<34} {best['docs_s']:9.0f} {best['docs_s'] / base:5.2f}x "
              f"{best['cpu_us']:12.0f} us {best['bytes']:7.0f} B")  # fmt: skip


if __name__ == "__main__":
    main()
