"""Learned sparse layout: one vector per document or one per passage (SciFact, no server).

    python -m benchmarks.sparse_layout [--beir DIR] [--sparse-model DIR] [--docs N] [--json]

Encodes SciFact with a SPLADE-family model (default: SPLADE-tiny) three ways and scores the
BEIR test queries by exact dot product (what the ``sparse_vector`` query computes):

- whole:    each document in one window, cut at the model's max_length (what ``index`` does)
- document: the index's passages (128 tokens, 32 overlap, as ``index`` cuts them for kNN), one
            vector per document: the per-token max over its passages
- passage:  one vector per passage, a document scored by its best passage (a nested field)

Prints nDCG@10 and Recall@100 of each, the stored features per document, and encode seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
from scipy import sparse as sp

from benchmarks.common import SCIFACT
from es_semantic.encoding.encoder import Encoder
from es_semantic.encoding.sparse import SparseEncoder, SparseVector
from es_semantic.evaluation.data import beir_paths, load_qrels, load_queries
from es_semantic.evaluation.metrics import evaluate
from es_semantic.indexing.passages import split_passages
from es_semantic.schema.contract import IndexContract, max_pool


def matrix(vectors: list[SparseVector], vocab: dict[str, int]) -> sp.csr_matrix:
    rows, cols, vals = [], [], []
    for r, vector in enumerate(vectors):
        for token, weight in vector.items():
            rows.append(r)
            cols.append(vocab[token])
            vals.append(weight)
    return sp.csr_matrix((vals, (rows, cols)), shape=(len(vectors), len(vocab)), dtype=np.float32)


def run_of(scores: np.ndarray, qids: list[str], dids: list[str]) -> dict[str, dict[str, float]]:
    out = {}
    for i, qid in enumerate(qids):
        top = np.argsort(-scores[i])[:100]
        out[qid] = {dids[j]: float(scores[i, j]) for j in top}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", default=str(SCIFACT))
    parser.add_argument("--sparse-model", default=None)
    parser.add_argument(
        "--docs", type=int, default=0, help="the judged documents, then others up to N (0: all)"
    )
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    corpus_path, queries_path, qrels_path = beir_paths(args.beir, "test")
    with open(corpus_path, encoding="utf-8") as handle:
        rows = [json.loads(line) for line in handle]
    queries, qrels = load_queries(queries_path), load_qrels(qrels_path)
    judged = {d for docs in qrels.values() for d in docs}
    rows.sort(key=lambda r: (str(r["_id"]) not in judged, str(r["_id"])))  # judged first
    rows = rows[: args.docs] if args.docs else rows
    dids = [str(r["_id"]) for r in rows]
    texts = [" ".join(t.strip() for t in (r.get("title", ""), r.get("text", "")) if t.strip())
             for r in rows]  # fmt: skip
    qids = [q for q in qrels if q in queries]
    model = args.sparse_model
    if model is None:
        from tests.sparse_models import splade_tiny_dir

        model = str(splade_tiny_dir())
    sparse = SparseEncoder(model)
    vocab = {t: i for i, t in enumerate(sparse.vocabulary)}
    splitter = Encoder()  # passages as `index` cuts them (the default dense model's tokens)
    contract = IndexContract.from_encoder(splitter.config)
    split = split_passages(splitter, texts, contract)
    q = matrix(sparse.encode_queries([queries[i] for i in qids]), vocab)
    results, seconds = {}, {}
    started = time.perf_counter()
    whole = sparse.encode_documents(texts)
    seconds["whole"] = time.perf_counter() - started
    started = time.perf_counter()
    flat = sparse.encode_documents([p.text for passages, _ in split for p in passages])
    seconds["passage"] = seconds["document"] = time.perf_counter() - started
    owner = np.repeat(np.arange(len(texts)), [len(passages) for passages, _ in split])
    per_doc, i = [], 0
    for passages, _ in split:
        per_doc.append(max_pool(flat[i : i + len(passages)]))
        i += len(passages)
    features = {"whole": whole, "document": per_doc, "passage": flat}
    for name, vectors in features.items():
        scores = (q @ matrix(vectors, vocab).T).toarray()
        if name == "passage":  # best passage per document
            best = np.zeros((len(qids), len(texts)), dtype=np.float32)
            np.maximum.at(best.T, owner, scores.T)
            scores = best
        metrics = evaluate(run_of(scores, qids, dids), qrels, ["ndcg@10", "recall@100"])
        results[name] = {**metrics, "features_per_doc": sum(map(len, vectors)) / len(texts),
                         "encode_s": round(seconds[name], 1)}  # fmt: skip
    if args.json:
        print(json.dumps({"docs": len(texts), "queries": len(qids), **results}, indent=2))
        return
    print(f"{len(texts)} documents, {len(qids)} queries, {sparse.model_name}")
    for name, r in results.items():
        print(f"{name:9} nDCG@10 {r['ndcg@10']:.4f}  R@100 {r['recall@100']:.4f}  "
              f"features/doc {r['features_per_doc']:.0f}  encode {r['encode_s']}s")  # fmt: skip


if __name__ == "__main__":
    main()
