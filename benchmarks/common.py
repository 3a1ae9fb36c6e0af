"""Helpers shared by the benchmarks: corpus loading and interleaved timing."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

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
