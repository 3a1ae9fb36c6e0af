"""Helpers shared by the benchmarks: corpus loading and interleaved timing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

SCIFACT = Path(
    os.environ.get("ES_SEMANTIC_SCIFACT")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data" / "scifact"
)


def scifact_passages(limit: int, folder: Path = SCIFACT) -> list[str]:
    """Title + text of the first ``limit`` SciFact documents (natural lengths)."""
    out = []
    with open(folder / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            doc = json.loads(line)
            out.append(f"{doc.get('title', '')} {doc.get('text', '')}".strip())
            if len(out) >= limit:
                break
    return out


def chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def interleaved(
    contenders: dict[str, Callable[[list[str]], object]], texts: list[str], chunk: int = 250
) -> tuple[dict[str, float], dict[str, list[object]]]:
    """Run every contender on the same chunks, alternating, so machine noise hits all alike."""
    seconds = dict.fromkeys(contenders, 0.0)
    outputs: dict[str, list[object]] = {name: [] for name in contenders}
    for i, part in enumerate(chunks(texts, chunk)):
        names = list(contenders)
        if i % 2:
            names.reverse()
        for name in names:
            started = time.perf_counter()
            outputs[name].append(contenders[name](part))
            seconds[name] += time.perf_counter() - started
    return seconds, outputs


def rss_mib() -> float:
    """This process's resident memory (Linux)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def exact_knn_ndcg(
    doc_vectors: Any, ids: list[str], query_vectors: Any, query_ids: list[str],
    qrels: dict[str, dict[str, int]],
) -> float:  # fmt: skip
    """nDCG@10 of exact inner-product search over ``doc_vectors`` (no server)."""
    import numpy as np

    from es_semantic.evaluation.metrics import ndcg_at

    top = np.argsort(-(query_vectors @ doc_vectors.T), axis=1)[:, :10]
    return float(np.mean([ndcg_at([ids[j] for j in row], qrels.get(q, {}), 10)
                          for q, row in zip(query_ids, top, strict=True)]))  # fmt: skip
