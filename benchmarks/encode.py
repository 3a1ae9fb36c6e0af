"""Encoder speed and fidelity for every backend x precision, side by side in one run.

    python -m benchmarks.encode [--limit 1000] [--max-length 256] [--int8] [--json]

Each contender — torch float32 (the reference), torch bfloat16 (autocast over float32 weights,
what ``precision="bfloat16"`` runs on a CPU, and the weights cast to bf16, for comparison), ONNX
Runtime float32, OpenVINO float32 / bfloat16 / float16 (the hint asked; the precision the
plugin reports is printed), what ``Encoder()`` picks by default (``auto``), ``auto`` and torch
float32 with the tokeniser prefetch on (``prefetch=True``: on CUDA only by default), sentence-transformers,
and with ``--int8`` the int8 builds (calibrated on the 300 passages after those measured; OpenVINO
int8-static also with bf16 around its int8 layers) — encodes the same SciFact passages (interleaved
chunks, so machine noise hits all alike). Printed: passages/s and the ratio to torch float32, mean / min
cosine (6 decimals) and max |delta| to torch float32, kNN nDCG@10 on the SciFact test queries
(exact search over these passages' vectors, no server; the test queries with a relevant
passage among them), the useful GFLOP/s (the model's matmuls on unpadded tokens) and its share of
this machine's torch matmul peak at the same precision (measured here at the model's shapes).
``--json`` prints all of it with the machine (CPU model and flags, GPU).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import SCIFACT, exact_knn_ndcg, interleaved, scifact_passages
from benchmarks.machine import describe, machine
from es_semantic import Encoder
from es_semantic.encoding.model_folder import default_model_path, load_model_config
from es_semantic.evaluation.data import load_qrels, load_queries

PEAK_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


def corpus_ids(limit: int) -> list[str]:
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as handle:
        return [str(json.loads(line)["_id"]) for line, _ in zip(handle, range(limit), strict=False)]


def model_flops(lengths: list[int], config: Any) -> float:
    """Matmul FLOPs of one BERT-style forward pass over unpadded sequences of ``lengths``:
    per layer, Q/K/V/O projections 8*L*d^2, the feed-forward 4*L*d*ffn, scores and mix 4*L^2*d."""
    d, ffn, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return float(sum(layers * (8 * n * d * d + 4 * n * d * ffn + 4 * n * n * d) for n in lengths))


def matmul_peak(dtype: torch.dtype, config: Any, rows: int = 4096, seconds: float = 2.0) -> float:
    """torch matmul GFLOP/s at the model's feed-forward shape (rows x d @ d x ffn), this CPU."""
    d, ffn = config.hidden_size, config.intermediate_size
    a, b = torch.randn(rows, d, dtype=dtype), torch.randn(d, ffn, dtype=dtype)
    for _ in range(3):
        a @ b
    done, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        a @ b
        done += 1
    return 2.0 * rows * d * ffn * done / (time.perf_counter() - started) / 1e9


def weights_cast_bf16(path: str, common: dict[str, Any]) -> Encoder:
    """torch with its weights cast to bf16 (the other way to run bf16 on a CPU; not shipped)."""
    enc = Encoder(path, backend="torch", precision="float32", device="cpu", **common)
    enc.model.to(torch.bfloat16)
    enc.precision = "bfloat16"
    return enc


def build_contenders(path: str, args: argparse.Namespace, sample: list[str]) -> dict[str, Any]:
    cache = tempfile.mkdtemp(prefix="es-semantic-bench-")
    say = print if not args.json else (lambda m: print(m, file=sys.stderr))
    common: dict[str, Any] = {"max_length": args.max_length, "cache_dir": cache, "report": say}
    make: dict[str, Callable[[], Any]] = {
        "torch float32": lambda: Encoder(path, backend="torch", precision="float32", **common),
        "torch bfloat16 (autocast)": lambda: Encoder(path, backend="torch", precision="bfloat16",
                                                     device="cpu", **common),
        "torch bfloat16 (weights cast)": lambda: weights_cast_bf16(path, common),
        "onnx float32": lambda: Encoder(path, backend="onnx", precision="float32", **common),
        "openvino float32": lambda: Encoder(path, backend="openvino", precision="float32",
                                            **common),
        "openvino bfloat16": lambda: Encoder(path, backend="openvino", precision="bfloat16",
                                             **common),
        "openvino float16": lambda: Encoder(path, backend="openvino", precision="float16",
                                            **common),
        "auto (Encoder())": lambda: Encoder(path, **common),
        # the tokeniser prefetch (#35 item 4: on CUDA by default), measured on this CPU
        "auto, prefetch on": lambda: Encoder(path, prefetch=True, **common),
        "torch float32, prefetch on": lambda: Encoder(path, backend="torch", precision="float32",
                                                      prefetch=True, **common),
    }  # fmt: skip
    if args.int8:
        q = {"calibration_texts": sample, "force_quantized": True, **common}
        make["torch int8"] = lambda: Encoder(path, backend="torch", quantize="int8", **common)
        make["onnx int8-dynamic"] = lambda: Encoder(path, backend="onnx",
                                                    quantize="int8-dynamic", **q)  # fmt: skip
        make["openvino int8-static"] = lambda: Encoder(path, backend="openvino",
                                                       quantize="int8-static", **q)  # fmt: skip
        make["openvino int8-static + bf16"] = lambda: Encoder(
            path, backend="openvino", quantize="int8-static", precision="bfloat16", **q
        )
    encoders: dict[str, Any] = {}
    for name, factory in make.items():
        if args.only and name not in args.only and name != "torch float32":
            continue
        try:
            encoders[name] = factory()
        except Exception as exc:  # a runtime not installed: said, not fatal
            say(f"{name}: skipped ({type(exc).__name__}: {exc})")
    return encoders


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=1000, help="SciFact passages")
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--chunk", type=int, default=100)
    parser.add_argument("--int8", action="store_true", help="add the int8 builds")
    parser.add_argument("--no-st", action="store_true", help="leave sentence-transformers out")
    parser.add_argument("--only", nargs="*", help="contender names (torch float32 always runs)")
    parser.add_argument("--json", action="store_true", help="figures and the machine as JSON")
    args = parser.parse_args()
    say = print if not args.json else (lambda m: print(m, file=sys.stderr))
    texts, ids = scifact_passages(args.limit), corpus_ids(args.limit)
    path = str(default_model_path())
    config = load_model_config(default_model_path())
    calibration = scifact_passages(args.limit + 300)[args.limit :]  # never the measured ones
    encoders = build_contenders(path, args, calibration)
    contenders: dict[str, Callable[[list[str]], Any]] = {
        name: enc.encode_documents for name, enc in encoders.items()
    }
    reference = None
    if not args.no_st:
        from sentence_transformers import SentenceTransformer

        reference = SentenceTransformer(path, device="cpu")
        reference.max_seq_length = args.max_length
        contenders["sentence-transformers float32"] = lambda part: reference.encode(
            part, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        )
    info = machine()
    say(f"{len(texts)} SciFact passages at max_length {args.max_length}; {describe(info)}; "
        f"torch threads {torch.get_num_threads()}")  # fmt: skip
    for name, enc in encoders.items():
        say(f"  {name}: {enc.choice.backend} at {enc.precision}")
    seconds, outputs = interleaved(contenders, texts, args.chunk)
    vectors = {name: np.concatenate(parts) for name, parts in outputs.items()}  # type: ignore[arg-type]
    base = vectors["torch float32"]
    tokenizer = encoders["torch float32"].tokenizer
    tokens = tokenizer(texts, truncation=True, max_length=args.max_length)["input_ids"]
    lengths = [len(t) for t in tokens]
    flops = model_flops(lengths, config)
    peaks = {name: matmul_peak(dtype, config) for name, dtype in PEAK_DTYPES.items()}
    queries = load_queries(SCIFACT / "queries.jsonl")
    qrels = load_qrels(SCIFACT / "qrels" / "test.tsv")
    held = set(ids)  # the test queries with a relevant passage among those encoded
    test_ids = [q for q in queries if q in qrels and any(d in held for d in qrels[q])]
    rows = []
    for name in contenders:
        enc = encoders.get(name)
        if enc is not None:
            qv = enc.encode_queries([queries[q] for q in test_ids])
            ran = enc.precision
        else:
            qv = reference.encode([queries[q] for q in test_ids], normalize_embeddings=True)  # type: ignore[union-attr]
            ran = "float32"
        cos = (base * vectors[name]).sum(axis=1) / (
            np.linalg.norm(base, axis=1) * np.linalg.norm(vectors[name], axis=1)
        )
        gflops = flops / seconds[name] / 1e9
        quantized = getattr(getattr(enc, "choice", None), "quantized", False)
        peak = None if quantized else peaks.get(ran)  # int8 has no torch matmul peak measured here
        rows.append({
            "contender": name, "backend": getattr(getattr(enc, "choice", None), "backend", "st"),
            "precision": ran, "passages_per_s": len(texts) / seconds[name],
            "ratio": seconds["torch float32"] / seconds[name],
            "mean_cosine": float(cos.mean()), "min_cosine": float(cos.min()),
            "max_abs_diff": float(np.abs(base - vectors[name]).max()),
            "ndcg10": exact_knn_ndcg(vectors[name], ids, qv, test_ids, qrels),
            "gflops": gflops, "peak_share": gflops / peak if peak else None,
        })  # fmt: skip
    if args.json:
        print(json.dumps({"passages": len(texts), "queries": len(test_ids),
                          "max_length": args.max_length,
                          "torch_threads": torch.get_num_threads(), "model_gflop": flops / 1e9,
                          "matmul_peak_gflops": peaks, "rows": rows, "machine": info},
                         indent=2))  # fmt: skip
        return
    print(f"nDCG@10 over the {len(test_ids)} test queries with a relevant passage among these")
    print(f"matmul peak at the model's shapes: float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 "
          f"{peaks['bfloat16']:.0f} GFLOP/s")  # fmt: skip
    print(f"| {'contender':<30} | ran as | passages/s | ratio | mean cos | min cos | max abs diff"
          f" | nDCG@10 | GFLOP/s | of peak |")  # fmt: skip
    print("|" + "|".join(["---"] * 10) + "|")
    for r in rows:
        share = f"{100 * r['peak_share']:.0f}%" if r["peak_share"] else "-"
        print(f"| {r['contender']:<30} | {r['precision']} | {r['passages_per_s']:.1f} | "
              f"{r['ratio']:.2f}x | {r['mean_cosine']:.6f} | {r['min_cosine']:.6f} | "
              f"{r['max_abs_diff']:.1e} | {r['ndcg10']:.4f} | {r['gflops']:.0f} | {share} |")  # fmt: skip


if __name__ == "__main__":
    main()
