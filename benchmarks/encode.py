"""Encoder speed and fidelity, measured side by side in one run.

    python benchmarks/encode.py [--limit 5000] [--device cpu|cuda]

Prints: our encoder vs sentence-transformers encode() (passages/s ratio, max |diff|), the int8
fast path vs our fp32 path (ratio, mean cosine), and the share of time spent tokenising.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import interleaved, scifact_passages
from es_semantic import Encoder
from es_semantic.encoding.model_folder import default_model_path
from es_semantic.encoding.tokens import tokenize


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=5000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--chunk", type=int, default=250)
    args = parser.parse_args()
    from sentence_transformers import SentenceTransformer

    texts = scifact_passages(args.limit)
    path = str(default_model_path())
    ours = Encoder(path, device=args.device, dtype="float32")
    reference = SentenceTransformer(path, device=args.device)
    contenders = {
        "es-semantic fp32": ours.encode_documents,
        "sentence-transformers": lambda part: reference.encode(
            part, batch_size=32, normalize_embeddings=True, convert_to_numpy=True
        ),
    }
    if args.device == "cpu":
        fast = Encoder(path, device="cpu", quantize="int8")
        contenders["es-semantic int8"] = fast.encode_documents
    else:
        half = Encoder(path, device=args.device, dtype="float16")
        contenders["es-semantic fp16"] = half.encode_documents
    print(
        f"{len(texts)} SciFact passages, max_length {ours.config.max_length}, "
        f"device {args.device}, torch threads {torch.get_num_threads()}"
    )
    seconds, outputs = interleaved(contenders, texts, args.chunk)
    vectors = {name: np.concatenate(parts) for name, parts in outputs.items()}
    rate = {name: len(texts) / s for name, s in seconds.items()}
    for name in contenders:
        print(f"  {name:<24} {rate[name]:8.1f} passages/s  ({seconds[name]:.1f} s)")
    base = vectors["es-semantic fp32"]
    diff = float(np.abs(base - vectors["sentence-transformers"]).max())
    print(
        f"ours / sentence-transformers: {rate['es-semantic fp32'] / rate['sentence-transformers']:.2f}x"
        f"  (goal >= 1.0), max |diff| {diff:.2e} (goal <= 1e-5)"
    )
    for name in [n for n in contenders if n not in ("es-semantic fp32", "sentence-transformers")]:
        cos = (base * vectors[name]).sum(axis=1)
        print(
            f"{name} / fp32: {rate[name] / rate['es-semantic fp32']:.2f}x (goal >= 2x), mean cosine "
            f"{cos.mean():.5f}, min {cos.min():.5f} (goal mean >= 0.995)"
        )
    started = time.perf_counter()
    tokens = tokenize(ours.tokenizer, texts, ours.config.max_length)
    tokenise_s = time.perf_counter() - started
    print(
        f"tokenisation: {tokenise_s:.2f} s = {100 * tokenise_s / seconds['es-semantic fp32']:.1f}% "
        f"of the fp32 encode time; {int(tokens.truncated.sum())} of {len(texts)} passages "
        "truncated at max_length"
    )


if __name__ == "__main__":
    main()
