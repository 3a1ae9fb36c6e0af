"""Retrieval sets built from scored sentence pairs (STS files), written in BEIR layout.

A pair scored at or above the threshold makes its first sentence a query whose relevant
document is the second. Every other distinct sentence of the file is a corpus document (the
partners, and both sides of the lower-scored pairs: distractors on the same topics). The query
sentences themselves are left out of the corpus, so a query cannot retrieve its own text and
any evaluator (``es-semantic eval --beir``, BEIR, trec_eval) scores the set as it is. A query
whose every partner is itself a query sentence (or the same text) has no relevant document
and is dropped; :class:`RetrievalSet` counts what was dropped.

Pure construction (:func:`retrieval_set`) apart from the two file shells
(:func:`read_scored_pairs`, :func:`write_beir`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from es_semantic.errors import InputError

DEFAULT_THRESHOLD = 4.0
"""On the STS 0-5 scale: 4 is "mostly equivalent, some unimportant details differ"."""

ScoredPair = tuple[str, str, float]


@dataclass(frozen=True)
class RetrievalSet:
    """Corpus, queries and qrels (relevance 1), keyed by stable text-hash ids."""

    corpus: dict[str, str]
    queries: dict[str, str]
    qrels: dict[str, dict[str, int]]
    pairs: int
    dropped_queries: int

    def summary(self) -> dict[str, int]:
        return {
            "pairs": self.pairs,
            "documents": len(self.corpus),
            "queries": len(self.queries),
            "relevant": sum(len(r) for r in self.qrels.values()),
            "dropped_queries": self.dropped_queries,
        }


def text_id(prefix: str, text: str) -> str:
    """A stable id for a text: the same sentence gets the same id in every build."""
    return prefix + hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def retrieval_set(
    pairs: Iterable[ScoredPair], threshold: float = DEFAULT_THRESHOLD
) -> RetrievalSet:
    """Queries from the first side of pairs scored >= ``threshold``; every other sentence a
    document; each query's relevant documents are its partners (never itself)."""
    rows = [(a.strip(), b.strip(), score) for a, b, score in pairs]
    partners: dict[str, list[str]] = {}
    for a, b, score in rows:
        if score >= threshold:
            partners.setdefault(a, []).append(b)
    corpus: dict[str, str] = {}
    for a, b, _ in rows:
        for text in (a, b):
            if text and text not in partners:
                corpus.setdefault(text_id("d", text), text)
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for query, found in partners.items():
        relevant = {text_id("d", b): 1 for b in found if b and b not in partners}
        if query and relevant:
            qid = text_id("q", query)
            queries[qid], qrels[qid] = query, relevant
    return RetrievalSet(corpus, queries, qrels, len(rows), len(partners) - len(queries))


def read_scored_pairs(path: str | Path) -> list[ScoredPair]:
    """A TSV of scored pairs with the scores as written (no rescaling): a header naming
    ``score``, ``sentence1`` and ``sentence2`` (STS benchmark), or no header and the columns
    ``sentence1, sentence2, score`` (Chinese STS-B)."""
    path = Path(path)
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the scored-pair file {path}: {exc}") from None
    if not any(line.strip() for line in lines):
        raise InputError(f"{path} is empty: it needs sentence1, sentence2 and score columns")
    header = [h.strip().lower() for h in lines[0].split("\t")]
    named = {"score", "sentence1", "sentence2"} <= set(header)
    columns = [header.index(c) for c in ("sentence1", "sentence2", "score")] if named else [0, 1, 2]
    out: list[ScoredPair] = []
    for number, line in enumerate(lines[1:] if named else lines, start=2 if named else 1):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) <= max(columns):
            raise InputError(
                f"{path}:{number}: {len(cells)} tab-separated columns; expected sentence1, "
                "sentence2 and score (or a header naming them)"
            )
        a, b, raw = (cells[i] for i in columns)
        if not a.strip() or not b.strip():
            raise InputError(f"{path}:{number}: sentence1 and sentence2 must be non-empty text")
        try:
            score = float(raw)
        except ValueError:
            raise InputError(f"{path}:{number}: score {raw!r} is not a number") from None
        out.append((a, b, score))
    return out


def write_beir(data: RetrievalSet, folder: str | Path, split: str = "test") -> Path:
    """corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv in ``folder`` (created)."""
    folder = Path(folder)
    (folder / "qrels").mkdir(parents=True, exist_ok=True)
    with open(folder / "corpus.jsonl", "w", encoding="utf-8") as handle:
        for doc_id, text in data.corpus.items():
            handle.write(json.dumps({"_id": doc_id, "title": "", "text": text},
                                    ensure_ascii=False) + "\n")  # fmt: skip
    with open(folder / "queries.jsonl", "w", encoding="utf-8") as handle:
        for qid, text in data.queries.items():
            handle.write(json.dumps({"_id": qid, "text": text}, ensure_ascii=False) + "\n")
    with open(folder / "qrels" / f"{split}.tsv", "w", encoding="utf-8") as handle:
        handle.write("query-id\tcorpus-id\tscore\n")
        for qid, relevant in data.qrels.items():
            for doc_id, grade in relevant.items():
                handle.write(f"{qid}\t{doc_id}\t{grade}\n")
    return folder


def build(pairs_file: str | Path, folder: str | Path, threshold: float = DEFAULT_THRESHOLD) -> (
        RetrievalSet):  # fmt: skip
    """Read a scored-pair file and write its retrieval set to ``folder``."""
    data = retrieval_set(read_scored_pairs(pairs_file), threshold)
    if not data.queries:
        raise InputError(
            f"{pairs_file}: no pair scores >= {threshold:g} with a partner that is not itself a "
            "query: lower --threshold (scores are read as written, e.g. 0-5 for STS)"
        )
    write_beir(data, folder)
    return data
