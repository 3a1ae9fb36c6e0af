"""CPU encoder speed and fidelity per backend, measured side by side in one run.

    python -m benchmarks.encode [--limit 5183] [--max-length 256] [--queries 2000]

For each contender — our torch fp32 (the reference), sentence-transformers, torch int8, ONNX
Runtime fp32 and int8-dynamic, OpenVINO fp32 and int8-static — on the same SciFact documents
(interleaved chunks, so machine noise hits all alike): passages/s and the ratio to torch fp32,
mean/min cosine to torch fp32, kNN nDCG@10 on the 300 SciFact test queries (exact search over
these vectors, no server), short queries/s, and the p50 of ``encode_queries([q])``.
Quantised builds are calibrated on 300 corpus texts (the user's own texts, as the CLI asks).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import SCIFACT, exact_knn_ndcg, interleaved, scifact_passages
from es_semantic import Encoder
from es_semantic.encoding.model_folder import default_model_path
from es_semantic.evaluation.data import load_qrels, load_queries

GOAL = "goal >= 2x at mean cosine >= 0.995 and nDCG@10 within 0.005"


def corpus_ids(limit: int) -> list[str]:
    import json

    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as handle:
        return [str(json.loads(line)["_id"]) for line, _ in zip(handle, range(limit), strict=False)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=5183)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--chunk", type=int, default=250)
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    texts = scifact_passages(args.limit)
    ids = corpus_ids(args.limit)
    path = str(default_model_path())
    cache = tempfile.mkdtemp(prefix="es-semantic-bench-")
    sample = texts[:300]
    common = {"max_length": args.max_length, "cache_dir": cache, "report": print}
    encoders = {
        "torch fp32": Encoder(path, device="cpu", **common),
        "torch int8": Encoder(path, device="cpu", quantize="int8", **common),
        "onnx fp32": Encoder(path, backend="onnx", **common),
        "onnx int8-dynamic": Encoder(path, backend="onnx", quantize="int8-dynamic",
                                     calibration_texts=sample, force_quantized=True, **common),
        "openvino fp32": Encoder(path, backend="openvino", **common),
        "openvino int8-static": Encoder(path, backend="openvino", quantize="int8-static",
                                        calibration_texts=sample, force_quantized=True, **common),
    }  # fmt: skip
    reference = SentenceTransformer(path, device="cpu")
    reference.max_seq_length = args.max_length
    contenders = {name: enc.encode_documents for name, enc in encoders.items()}
    contenders["sentence-transformers"] = lambda part: reference.encode(
        part, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
    )
    print(f"{len(texts)} SciFact documents at max_length {args.max_length}, CPU, torch threads "
          f"{torch.get_num_threads()}; {GOAL}")  # fmt: skip
    seconds, outputs = interleaved(contenders, texts, args.chunk)
    vectors = {name: np.concatenate(parts) for name, parts in outputs.items()}  # type: ignore[arg-type]
    base = vectors["torch fp32"]

    queries = load_queries(SCIFACT / "queries.jsonl")
    qrels = load_qrels(SCIFACT / "qrels" / "test.tsv")
    test_ids = [q for q in queries if q in qrels]
    short = list(queries.values())
    short = (short * (args.queries // len(short) + 1))[: args.queries]
    print(f"  {'contender':<22} {'passages/s':>10} {'ratio':>6} {'mean cos':>9} {'min cos':>8} "
          f"{'nDCG@10':>8} {'queries/s':>10} {'p50 1 query':>12}")  # fmt: skip
    for name in contenders:
        cos = (base * vectors[name]).sum(axis=1)
        enc = encoders.get(name)
        if enc is not None:
            qv = enc.encode_queries([queries[q] for q in test_ids])
            started = time.perf_counter()
            enc.encode_queries(short)
            qps = len(short) / (time.perf_counter() - started)
            single = []
            for q in short[:100]:
                started = time.perf_counter()
                enc.encode_queries([q])
                single.append(time.perf_counter() - started)
            p50 = f"{1000 * statistics.median(single):9.2f} ms"
        else:
            qv = reference.encode([queries[q] for q in test_ids], normalize_embeddings=True)
            started = time.perf_counter()
            reference.encode(short, batch_size=32, normalize_embeddings=True)
            qps, p50 = len(short) / (time.perf_counter() - started), "-"
        ndcg = exact_knn_ndcg(vectors[name], ids, qv, test_ids, qrels)
        rate = len(texts) / seconds[name]
        ratio = seconds["torch fp32"] / seconds[name]
        print(f"  {name:<22} {rate:10.1f} {ratio:5.2f}x {cos.mean():9.5f} {cos.min():8.5f} "
              f"{ndcg:8.4f} {qps:10.0f} {p50:>12}")  # fmt: skip


if __name__ == "__main__":
    main()
