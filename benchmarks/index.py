"""Indexing throughput and memory, measured side by side in one run on the local server.

    python benchmarks/index.py [--limit 5183] [--skip-langchain] [--skip-rss]

1. end-to-end indexing (es-semantic Indexer) vs encoding alone, on the same texts: goal >= 0.9;
2. vs langchain-elasticsearch ElasticsearchStore.add_texts with a sentence-transformers
   embeddings wrapper on the same model folder (bench extra): goal >= 2x;
3. peak RSS of the indexing process for 5k vs 50k documents (tiny model; SciFact repeated with
   new ids): goal within +15%.
Chunks alternate between contenders so machine noise hits all of them alike.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import chunks, scifact_passages
from es_semantic import Encoder, Indexer
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_client
from es_semantic.encoding.model_folder import default_model_path


def langchain_store(url: str, index: str, model_dir: str):  # type: ignore[no-untyped-def]
    from langchain_core.embeddings import Embeddings
    from langchain_elasticsearch import ElasticsearchStore
    from sentence_transformers import SentenceTransformer

    class STEmbeddings(Embeddings):
        """What langchain-huggingface's HuggingFaceEmbeddings does, on the same folder."""

        def __init__(self) -> None:
            self.model = SentenceTransformer(model_dir, device="cpu")

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return self.model.encode(texts, normalize_embeddings=True).tolist()

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    return ElasticsearchStore(index_name=index, embedding=STEmbeddings(), es_url=url)


def throughput(limit: int, skip_langchain: bool) -> None:
    texts = scifact_passages(limit)
    encoder = Encoder()
    seconds = {"encode only": 0.0, "es-semantic index": 0.0, "langchain add_texts": 0.0}
    with resolve_server() as server:
        es = make_client(server.config)
        print(f"server: {server.description}; {len(texts)} SciFact passages")
        indexer = Indexer(
            es, "bench-index", encoder, index_options="int8_hnsw", refresh=False, chunking="none"
        )
        store = (
            None
            if skip_langchain
            else langchain_store(
                server.config.url or "", "bench-langchain", str(default_model_path())
            )
        )
        for i, part in enumerate(chunks(texts, 500)):
            docs = [{"id": f"{i}-{j}", "text": t} for j, t in enumerate(part)]
            order = ["encode only", "es-semantic index", "langchain add_texts"]
            for name in order if i % 2 == 0 else order[::-1]:
                if name == "langchain add_texts" and store is None:
                    continue
                started = time.perf_counter()
                if name == "encode only":
                    encoder.embed(part, kind="document")
                elif name == "es-semantic index":
                    report = indexer.index(docs)
                    assert report.indexed == len(docs), report
                else:
                    store.add_texts(part, ids=[d["id"] for d in docs])  # type: ignore[union-attr]
                seconds[name] += time.perf_counter() - started
        es.indices.refresh(index="bench-index")
        assert es.count(index="bench-index")["count"] == len(texts)
        es.close()
    rate = {k: len(texts) / v for k, v in seconds.items() if v}
    for name, r in rate.items():
        print(f"  {name:<22} {r:7.1f} docs/s")
    print(
        f"end-to-end / encode-only: {rate['es-semantic index'] / rate['encode only']:.2f} (goal >= 0.9)"
    )
    if "langchain add_texts" in rate:
        print(
            f"es-semantic / langchain ElasticsearchStore: "
            f"{rate['es-semantic index'] / rate['langchain add_texts']:.2f}x (goal >= 2x)"
        )


def rss_child(n: int, url: str, model_dir: str) -> None:
    """Index n documents (SciFact repeated with new ids) and print peak RSS in MiB."""
    texts = scifact_passages(5183)
    es = make_client(__import__("es_semantic").ESConfig(url=url))

    def docs():
        for i in range(n):
            yield {"id": f"r{i}", "text": texts[i % len(texts)]}

    report = Indexer(
        es, f"bench-rss-{n}", Encoder(model_dir), batch_size=256, chunking="none"
    ).index(docs())
    assert report.indexed == n, report
    print(
        json.dumps(
            {"n": n, "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        )
    )


def rss_compare() -> None:
    from tests.tiny_models import build_tiny_bert

    with tempfile.TemporaryDirectory() as tmp, resolve_server() as server:
        model = str(build_tiny_bert(Path(tmp) / "tiny"))
        peaks = {}
        for n in (5_000, 50_000):
            out = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "benchmarks.index",
                    "--rss-child",
                    str(n),
                    "--url",
                    server.config.url or "",
                    "--model",
                    model,
                ],
                capture_output=True,
                text=True,
                check=True,
            )
            peaks[n] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mib"]
            print(f"  peak RSS indexing {n:>6} docs: {peaks[n]:.0f} MiB")
        print(f"50k / 5k peak RSS: {peaks[50_000] / peaks[5_000]:.2f} (goal <= 1.15)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=5183)
    parser.add_argument("--skip-langchain", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--only-rss", action="store_true")
    parser.add_argument("--rss-child", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--model", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.rss_child:
        rss_child(args.rss_child, args.url, args.model)
        return
    if not args.only_rss:
        throughput(args.limit, args.skip_langchain)
    if not args.skip_rss:
        rss_compare()


if __name__ == "__main__":
    main()
