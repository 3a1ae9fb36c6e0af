"""Client overhead of search, fusion cost and rerank cost, from one run on the local server.

    python benchmarks/search.py [--docs 300] [--queries 40]

Overhead = our wall time minus the Elasticsearch request round trip and the query encoding:
what es-semantic itself adds (request building, parsing, fusion). The server's own speed is not
measured here (the local ES-API server is an emulator, slow by design).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import SCIFACT, scifact_passages
from es_semantic import CrossEncoder, Encoder, Indexer, Searcher
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_client
from es_semantic.search.fusion import LegHit, rrf, weighted

INDEX = "bench-search"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def minilm_shaped_cross_encoder(folder: Path, tokenizer_dir: Path) -> Path:
    """Random weights in the shape of ms-marco-MiniLM-L6 (no package ships a cross-encoder)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    config = BertConfig(
        vocab_size=30522,
        hidden_size=384,
        num_hidden_layers=6,
        num_attention_heads=12,
        intermediate_size=1536,
        num_labels=1,
    )
    BertForSequenceClassification(config).save_pretrained(str(folder))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(folder))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=300)
    parser.add_argument("--queries", type=int, default=40)
    args = parser.parse_args()
    lines = (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines]
    queries = queries[: args.queries]
    docs = [{"id": str(i), "text": t} for i, t in enumerate(scifact_passages(args.docs))]
    encoder = Encoder()
    with resolve_server() as server:
        es = make_client(server.config)
        print(f"server: {server.description}; {len(docs)} docs, {len(queries)} queries")
        Indexer(es, INDEX, encoder, index_options="flat", chunking="none").index(docs)
        searcher = Searcher(es, INDEX, encoder)
        searcher.search("warm up", mode="hybrid")
        for mode, fusion in (
            ("keyword", "auto"),
            ("knn", "auto"),
            ("hybrid", "rrf"),
            ("hybrid", "weighted"),
            ("hybrid", "server"),
        ):
            overhead = []
            for q in queries:
                r = searcher.search(q, mode=mode, fusion=fusion, k=10)  # type: ignore[arg-type]
                t = r.took_ms
                overhead.append(t["total"] - t["request"] - t.get("encode", 0.0))
            print(
                f"  {mode:<8} {fusion:<9} client overhead p50 {percentile(overhead, 0.5):6.2f} ms"
                f"  p95 {percentile(overhead, 0.95):6.2f} ms  (goal p50 <= 2 ms)"
            )
        es.indices.delete(index=INDEX)
        es.close()
    legs = {
        "keyword": [LegHit(f"k{i}", 100.0 - i) for i in range(100)],
        "knn": [LegHit(f"k{i * 2}" if i % 2 else f"v{i}", 1.0 - i / 200) for i in range(100)],
    }
    for name, fuse in (
        ("rrf", lambda: rrf(legs)),
        ("weighted", lambda: weighted(legs, {"knn": 0.5, "keyword": 0.5})),
    ):
        runs = []
        for _ in range(200):
            started = time.perf_counter()
            fuse()
            runs.append((time.perf_counter() - started) * 1000)
        print(
            f"  fusion {name:<8} of 2 x 100 hits: p50 {statistics.median(runs):.3f} ms  (goal <= 1 ms)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        from es_semantic.encoding.model_folder import default_model_path

        folder = minilm_shaped_cross_encoder(Path(tmp), default_model_path())
        passages = [d["text"] for d in docs[:50]]
        for max_length in (512, 256):
            ce = CrossEncoder(folder, max_length=max_length)
            ce.score(queries[0], passages[:4])  # warm up
            started = time.perf_counter()
            ce.score(queries[0], passages)
            took = time.perf_counter() - started
            print(
                f"  rerank of 50 SciFact candidates, MiniLM-L6-shaped cross-encoder, max_length "
                f"{max_length}: {took * 1000:.0f} ms ({50 / took:.0f} pairs/s, CPU)"
            )


if __name__ == "__main__":
    main()
