"""Long documents: nested passage vectors vs one ES document per passage + collapse.

    python -m benchmarks.chunking [--docs 1500] [--chunk-tokens 128] [--beir DIR]   (ES_URL: a real cluster)

SciFact (BEIR test split): every judged document plus distractors up to --docs, cut into passages
of --chunk-tokens with the packaged all-MiniLM-L6-v2. The passages are encoded ONCE and the same
vectors go into three indices, built and queried side by side in one run:

- nested:   one ES document per document, passages in a nested field; top-level kNN on the
            nested vectors (k counts documents), best passage as inner hit  (es-semantic's layout)
- collapse: one ES document per passage with a parent id; kNN + collapse on the parent
            (k counts passages, so k is raised to --collapse-k to fill 10 distinct documents)
- single:   one vector per document, cut at the model's window (what --chunk replaces)

Prints bulk time, stored ES documents, kNN p50/p95 latency, nDCG@10 / Recall@10 and how many
distinct documents a top 10 holds, with ratios against the nested layout.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Iterable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from elasticsearch import Elasticsearch, helpers

from benchmarks.common import SCIFACT
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_client
from es_semantic.encoding.encoder import Encoder
from es_semantic.evaluation.data import beir_paths, load_qrels, load_queries
from es_semantic.evaluation.metrics import evaluate, percentile
from es_semantic.indexing.actions import EncodedDoc, content_hash, to_action
from es_semantic.indexing.passages import split_passages
from es_semantic.schema.contract import IndexContract
from es_semantic.schema.mapping import index_body
from es_semantic.types import Document


def load_corpus(folder: str, limit: int, judged: set[str]) -> list[Document]:
    corpus_path, _, _ = beir_paths(folder, "test")
    docs: list[Document] = []
    with open(corpus_path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    rows.sort(key=lambda r: (str(r["_id"]) not in judged, str(r["_id"])))
    for row in rows[:limit]:
        docs.append(Document(str(row["_id"]), {"title": row["title"], "text": row["text"]}))
    return docs


def bulk(es: Elasticsearch, actions: Iterable[dict[str, Any]], index: str) -> float:
    started = time.perf_counter()
    _ok, errors = helpers.bulk(es, actions, chunk_size=200, raise_on_error=False)
    es.indices.refresh(index=index)
    if errors:
        raise SystemExit(f"{index}: {len(errors)} bulk errors, first: {errors[0]}")
    return time.perf_counter() - started


def collapse_body(vector: list[float], field: str, k: int) -> dict[str, Any]:
    return {
        "knn": {"field": field, "query_vector": vector, "k": k, "num_candidates": max(100, k)},
        "collapse": {"field": "parent"},
        "size": 10,
        "_source": ["parent", "text"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", default=str(SCIFACT))
    parser.add_argument("--docs", type=int, default=1500)
    parser.add_argument("--chunk-tokens", type=int, default=128)
    parser.add_argument("--collapse-k", type=int, default=50)
    args = parser.parse_args()
    _, queries_path, qrels_path = beir_paths(args.beir, "test")
    qrels = load_qrels(qrels_path)
    queries = {q: t for q, t in load_queries(queries_path).items() if q in qrels}
    judged = {d for rels in qrels.values() for d in rels}
    docs = load_corpus(args.beir, args.docs, judged)
    kept = {d.id for d in docs}
    qrels = {q: {d: r for d, r in rels.items() if d in kept} for q, rels in qrels.items()}
    enc = Encoder()
    nested = IndexContract.from_encoder(
        enc.config, chunking="nested", chunk_tokens=args.chunk_tokens, index_options="flat"
    )
    single = IndexContract.from_encoder(enc.config, index_options="flat", chunking="none")
    texts = [d.full_text() for d in docs]
    started = time.perf_counter()
    split = split_passages(enc, texts, nested)
    flat = [p.text for passages, _ in split for p in passages]
    vectors = enc.encode_documents(flat)
    whole = enc.embed(texts)
    print(
        f"{len(docs)} documents -> {len(flat)} passages of <= {args.chunk_tokens} tokens "
        f"({sum(len(p) > 1 for p, _ in split)} documents chunked, {whole.truncated_count} cut "
        f"at {enc.config.max_length} tokens unchunked); encoded in "
        f"{time.perf_counter() - started:.0f} s",
        flush=True,
    )
    encoded, i = [], 0
    for passages, _ in split:
        n = len(passages)
        encoded.append(
            EncodedDoc(
                passages=[(p.text, v) for p, v in zip(passages, vectors[i : i + n], strict=True)]
            )
        )
        i += n
    q_vectors = enc.encode_queries(list(queries.values())).tolist()
    with resolve_server() as server:  # ES_URL, else a local server
        es = make_client(server.config)
        print(f"server: {server.description}", flush=True)
        names = {
            name: f"bench-chunking-{name}-{os.getpid()}"
            for name in ("nested", "collapse", "single")
        }
        try:
            es.indices.create(index=names["nested"], **index_body(nested))
            es.indices.create(index=names["single"], **index_body(single))
            es.indices.create(
                index=names["collapse"],
                mappings={
                    "properties": {
                        "parent": {"type": "keyword"},
                        "text": {"type": "text"},
                        "embedding": index_body(single)["mappings"]["properties"]["embedding"],
                    }
                },
            )
            bulk_s = {
                "nested": bulk(es, (
                    to_action(names["nested"], d.id or "", d, content_hash(d, nested), e, nested)
                    for d, e in zip(docs, encoded, strict=True)), names["nested"]),
                "collapse": bulk(es, (
                    {"_index": names["collapse"], "_id": f"{d.id}#{n}",
                     "_source": {"parent": d.id, "text": text, "embedding": v.tolist()}}
                    for d, e in zip(docs, encoded, strict=True)
                    for n, (text, v) in enumerate(e.passages)), names["collapse"]),
                "single": bulk(es, (
                    to_action(names["single"], d.id or "", d, content_hash(d, single), v, single)
                    for d, v in zip(docs, whole.vectors, strict=True)), names["single"]),
            }  # fmt: skip
            stored = {name: es.count(index=index)["count"] for name, index in names.items()}
            runs: dict[str, dict[str, dict[str, float]]] = {n: {} for n in names}
            ms: dict[str, list[float]] = {n: [] for n in names}
            distinct: dict[str, list[int]] = {n: [] for n in names}
            for turn, (qid, vector) in enumerate(zip(queries, q_vectors, strict=True)):
                order = list(names) if turn % 2 == 0 else list(reversed(names))
                for name in order:
                    if name == "collapse":
                        body = collapse_body(vector, "embedding", args.collapse_k)
                    else:
                        contract = nested if name == "nested" else single
                        field = contract.vector_path
                        body = {"knn": {"field": field, "query_vector": vector, "k": 10,
                                        "num_candidates": 100}, "size": 10, "_source": False}  # fmt: skip
                        if name == "nested":
                            body["knn"]["inner_hits"] = {
                                "size": 1,
                                "_source": False,
                                "fields": ["passages.text"],
                            }
                    t0 = time.perf_counter()
                    resp = es.search(index=names[name], **body)
                    ms[name].append((time.perf_counter() - t0) * 1000)
                    hits = resp["hits"]["hits"]
                    ids = [h["_source"]["parent"] if name == "collapse" else h["_id"] for h in hits]
                    distinct[name].append(len(set(ids)))
                    runs[name][qid] = {d: 1.0 / (r + 1) for r, d in enumerate(dict.fromkeys(ids))}
            ranked = {n: {q: list(r) for q, r in run.items()} for n, run in runs.items()}
            _report(names, bulk_s, stored, ms, distinct, ranked, qrels)
            # collapse with k=10, as a naive port would do: fewer than 10 distinct documents
            short = []
            for vector in q_vectors[:50]:
                resp = es.search(index=names["collapse"], **collapse_body(vector, "embedding", 10))
                short.append(len(resp["hits"]["hits"]))
            print(f"collapse with k=10: {sum(short) / len(short):.2f} distinct documents per top 10 "
                  f"(first 50 queries); k must grow with passages per document")  # fmt: skip
        finally:
            es.indices.delete(index=",".join(names.values()), ignore_unavailable=True)


def _report(names, bulk_s, stored, ms, distinct, ranked, qrels) -> None:  # type: ignore[no-untyped-def]
    print(f"\n{'layout':<9} {'bulk s':>7} {'ratio':>6} {'ES docs':>8} {'p50 ms':>7} {'p95 ms':>7} "
          f"{'ratio':>6} {'nDCG@10':>8} {'R@10':>6} {'distinct/10':>11}")  # fmt: skip
    base_bulk, base_p50 = bulk_s["nested"], percentile(ms["nested"], 0.5)
    for name in names:
        scores = evaluate(ranked[name], qrels, ["ndcg@10", "recall@10"])
        p50 = percentile(ms[name], 0.5)
        print(
            f"{name:<9} {bulk_s[name]:>7.1f} {bulk_s[name] / base_bulk:>6.2f} {stored[name]:>8} "
            f"{p50:>7.1f} {percentile(ms[name], 0.95):>7.1f} {p50 / base_p50:>6.2f} "
            f"{scores['ndcg@10']:>8.4f} {scores['recall@10']:>6.4f} "
            f"{sum(distinct[name]) / len(distinct[name]):>11.2f}"
        )


if __name__ == "__main__":
    main()
