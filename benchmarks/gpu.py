"""GPU figures in one run: our fp16 encoder vs sentence-transformers fp16, the token budget,
and end-to-end indexing (the real Indexer into the loopback fake cluster) vs encode-only, with
the encoder's tokeniser prefetch (#35 item 4) on and off side by side.

    python -m benchmarks.gpu [--model DIR] [--limit 20000] [--max-length 256]

Needs a CUDA GPU (``--device cpu --limit 60 --max-length 64 --parts index`` is a dry run of the
code). The fake cluster (benchmarks/fake_cluster.py) answers like 9.3, so vectors go as base64;
the Indexer rows also compare JSON arrays.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "true")  # a GPU waits on the tokenizer otherwise

from benchmarks.common import scifact_passages
from benchmarks.fake_cluster import fake_cluster
from es_semantic import Encoder

HALF = "float16"


def sync() -> None:
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def timed(fn, *args, repeat: int = 2):  # type: ignore[no-untyped-def]
    best, out = float("inf"), None
    for _ in range(repeat):
        sync()
        started = time.perf_counter()
        out = fn(*args)
        sync()
        best = min(best, time.perf_counter() - started)
    return best, out


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default=None)
    parser.add_argument("--limit", type=int, default=20_000)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--senders", type=int, default=4)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--parts", default="encode,budget,index", help="which parts to run")
    args = parser.parse_args()
    if args.model is None:
        from es_semantic.encoding.model_folder import default_model_path

        args.model = str(default_model_path())
    corpus = scifact_passages(args.limit)  # SciFact has 5,183: cycled up to --limit
    texts = (corpus * (args.limit // len(corpus) + 1))[: args.limit]
    global HALF
    device = args.device
    HALF = "float16" if device.startswith("cuda") else "float32"
    gpu_name = torch.cuda.get_device_name() if device.startswith("cuda") else "CPU (dry run)"
    print(f"{gpu_name}, torch {torch.__version__}, {len(texts)} SciFact "
          f"passages at max_length {args.max_length}")  # fmt: skip

    parts = set(args.parts.split(","))
    ours = Encoder(args.model, device=device, dtype=HALF, max_length=args.max_length)
    if "encode" in parts:
        compare(args, texts, ours)
    if "budget" in parts:
        budget(args, texts)
    if "index" in parts:
        end_to_end(args, texts, ours)


def compare(args: argparse.Namespace, texts: list[str], ours: Encoder) -> None:
    """Ours fp16 vs sentence-transformers fp16 (and fp32 as the reference)."""
    from sentence_transformers import SentenceTransformer

    device = args.device
    st = SentenceTransformer(args.model, device=device)
    st.max_seq_length = args.max_length
    st_half = SentenceTransformer(args.model, device=device)
    if HALF == "float16":
        st_half = st_half.half()
    st_half.max_seq_length = args.max_length
    ours.encode_documents(texts[:2000])  # warm-up: kernels, cuBLAS handles
    st_half.encode(texts[:2000], batch_size=256)
    t_ours, v_ours = timed(ours.encode_documents, texts)
    t_st, v_st = timed(lambda t: st_half.encode(t, batch_size=256, normalize_embeddings=True,
                                                convert_to_numpy=True), texts)  # fmt: skip
    from es_semantic.encoding.runtimes import _attention_backends

    def st_same_backends(t: list[str]) -> np.ndarray:
        with _attention_backends(torch.device(device)):
            return st_half.encode(t, batch_size=256, normalize_embeddings=True,
                                  convert_to_numpy=True)  # fmt: skip

    st_same_backends(texts[:2000])
    t_st_same, _ = timed(st_same_backends, texts)
    t_st32, v_st32 = timed(lambda t: st.encode(t, batch_size=256, normalize_embeddings=True,
                                               convert_to_numpy=True), texts, repeat=1)  # fmt: skip
    cos_st = (unit(v_ours) * unit(v_st)).sum(1)
    cos_32 = (unit(v_ours) * unit(v_st32)).sum(1)
    st_self = (unit(v_st) * unit(v_st32)).sum(1)
    n = len(texts)
    print(f"encode  ours fp16 {n / t_ours:8.0f} passages/s | sentence-transformers fp16 "
          f"{n / t_st:8.0f} (batch 256) | ST fp32 {n / t_st32:8.0f}")  # fmt: skip
    print(f"  ST fp16 with cuDNN attention off as ours: {n / t_st_same:8.0f} passages/s; ours / "
          f"that: {t_st_same / t_ours:.2f}x")  # fmt: skip
    print(f"  ours / ST fp16: {t_st / t_ours:.2f}x (goal >= 1.0); max |1 - cos| to ST fp16 "
          f"{(1 - cos_st).max():.2e}, to fp32 {(1 - cos_32).max():.2e} (ST fp16 to fp32: "
          f"{(1 - st_self).max():.2e}; goal <= 1e-3)")  # fmt: skip


def budget(args: argparse.Namespace, texts: list[str]) -> None:
    """Rows and padded tokens per forward pass."""
    n, device = len(texts), args.device
    for tokens in (16_384, 65_536, 262_144):
        sized = Encoder(args.model, device=device, dtype=HALF, max_length=args.max_length,
                        batch_size=4096, max_batch_tokens=tokens)  # fmt: skip
        sized.encode_documents(texts[:1000])
        t, _ = timed(sized.encode_documents, texts)
        print(f"  token budget {tokens:>7}: {n / t:8.0f} passages/s")
        del sized


def end_to_end(args: argparse.Namespace, texts: list[str], ours: Encoder) -> None:
    """The Indexer (encode, actions, bulk) vs encode-only, with the encoder's tokeniser prefetch
    on (the CUDA default: the next window tokenised in a worker thread while a batch runs, pinned
    host memory for the copies) and off (tokenise the whole call, then run), side by side."""
    n = len(texts)
    from elasticsearch import Elasticsearch

    from es_semantic.elastic.client import fast_serializer
    from es_semantic.indexing.indexer import Indexer

    docs = [{"id": f"d{i}", "text": t} for i, t in enumerate(texts)]
    batch = 2048
    default = ours.prefetch
    with fake_cluster("9.3.0") as url:
        for prefetch in (default, not default):
            ours.prefetch = prefetch
            t_enc, _ = timed(lambda: [ours.encode_documents(texts[i : i + batch])
                                      for i in range(0, n, batch)])  # fmt: skip
            print(f"index   prefetch {'on' if prefetch else 'off'}"
                  f"{' (default)' if prefetch == default else ''}: encode-only ceiling "
                  f"(batches of {batch}): {n / t_enc:8.0f} docs/s")  # fmt: skip
            forms = ("base64", "json") if prefetch == default else ("base64",)
            for form in forms:
                for senders in sorted({1, args.senders}):
                    es = Elasticsearch(url, **fast_serializer())
                    indexer = Indexer(es, f"gpu-{form}-{senders}-{prefetch}", ours,
                                      chunking="none", vector_format=form, senders=senders,
                                      batch_size=batch, chunk_size=1000,
                                      refresh=False)  # fmt: skip
                    sync()
                    started, cpu = time.perf_counter(), time.process_time()
                    report = indexer.index(docs)
                    wall, cpu = time.perf_counter() - started, time.process_time() - cpu
                    es.close()
                    assert report.indexed == n, report
                    print(f"  Indexer {form:<6} {senders} sender(s): {n / wall:8.0f} docs/s = "
                          f"{t_enc / wall:.2f} of encode-only (goal >= 0.8); encode "
                          f"{report.encode_seconds:.1f} s of {wall:.1f} s wall, client CPU "
                          f"{cpu / n * 1e6:.0f} us/doc")  # fmt: skip
    ours.prefetch = default


if __name__ == "__main__":
    main()
