"""Training files -> typed pair sets (no model code): scored pairs, labelled pairs, or query
pairs with optional negatives; the loss follows from the columns.

JSONL (one object a line) or TSV/CSV (a header row, or no header for the STS-B layout
``sentence1<TAB>sentence2<TAB>score``). A wrong file gets an error naming the file, the line and
the columns expected.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from es_semantic.errors import InputError
from es_semantic.indexing.readers import BadLine, json_lines

Kind = Literal["scored", "labelled", "queries"]
EXPECTED = (
    "scored pairs (sentence1, sentence2, score), labelled pairs (sentence1, sentence2, label "
    "0/1) or query pairs (query, positive[, negative...])"
)
DEV_SHARE = 0.1


@dataclass(frozen=True)
class PairSet:
    """Rows of one kind: (a, b, score in [0, 1]) | (a, b, 0/1) | (query, positive, negatives)."""

    kind: Kind
    first: list[str]
    second: list[str]
    scores: list[float] = field(default_factory=list)  # scored: 0..1; labelled: 0/1
    negatives: list[list[str]] = field(default_factory=list)  # queries only
    source: str = ""

    def __len__(self) -> int:
        return len(self.first)

    def digest(self) -> str:
        payload = json.dumps([self.kind, self.first, self.second, self.scores, self.negatives],
                             ensure_ascii=False)  # fmt: skip
        return hashlib.sha256(payload.encode()).hexdigest()[:16]

    def subset(self, rows: Sequence[int]) -> PairSet:
        pick = list(rows)
        return PairSet(
            self.kind,
            [self.first[i] for i in pick],
            [self.second[i] for i in pick],
            [self.scores[i] for i in pick] if self.scores else [],
            [self.negatives[i] for i in pick] if self.negatives else [],
            self.source,
        )


def read_pairs(path: str | Path) -> PairSet:
    """Read a training or dev file; scores of any numeric range are scaled to [0, 1]."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the training file {path}: {exc}") from None
    lines = text.splitlines()
    if not any(line.strip() for line in lines):
        raise InputError(f"{path} is empty: it needs {EXPECTED}")
    first_line = next(line for line in lines if line.strip()).lstrip()
    records = _json_records(path, lines) if first_line.startswith("{") else _table_records(
        path, text)  # fmt: skip
    return _typed(path, records)


def split_dev(pairs: PairSet, share: float = DEV_SHARE) -> tuple[PairSet, PairSet]:
    """A stable train/dev split: the ``share`` of rows (at least one) whose first text hashes
    lowest; every row with the same first text lands on the same side, so none overlaps."""
    texts = sorted(set(pairs.first), key=_bucket)
    wanted = max(1, round(share * len(texts)))
    held = set(texts[:wanted])
    dev = [i for i, a in enumerate(pairs.first) if a in held]
    train = [i for i, a in enumerate(pairs.first) if a not in held]
    if len(texts) < 2 or not train:
        raise InputError(
            f"{pairs.source} has {len(pairs)} rows: too few to cut a dev split; pass --dev FILE"
        )
    return pairs.subset(train), pairs.subset(dev)


def _bucket(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


Record = tuple[int, dict[str, object]]


def _json_records(path: Path, lines: list[str]) -> list[Record]:
    out: list[Record] = []
    for number, value in json_lines(lines):
        if isinstance(value, BadLine):
            raise InputError(f"{path}:{number}: not valid JSON ({value.message})")
        if not isinstance(value, dict):
            raise InputError(f"{path}:{number}: a JSON object is expected: {EXPECTED}")
        out.append((number, value))
    return out


def _table_records(path: Path, text: str) -> list[Record]:
    delimiter = "\t" if "\t" in text.splitlines()[0] else ","
    reader = csv.reader(text.splitlines(), delimiter=delimiter, quoting=csv.QUOTE_NONE)
    rows = [(n, row) for n, row in enumerate(reader, 1) if row]
    header = [h.strip().lower() for h in rows[0][1]]
    known = {"sentence1", "sentence2", "score", "label", "query", "positive", "negative"}
    if known & set(header):
        body = rows[1:]
    else:  # STS-B layout without a header: sentence1, sentence2, score
        header, body = ["sentence1", "sentence2", "score"], rows
    out: list[Record] = []
    for number, row in body:
        if len(row) < len(header) and not (header[0] == "query" and len(row) >= 2):
            raise InputError(
                f"{path}:{number}: {len(row)} columns, {len(header)} expected ({', '.join(header)})"
            )
        record: dict[str, object] = {}
        negatives = []
        for name, value in zip(header, row, strict=False):
            if name == "negative":
                negatives.append(value)
            else:
                record[name] = value
        negatives += row[len(header) :] if header[0] == "query" else []
        if negatives:
            record["negative"] = negatives
        out.append((number, record))
    return out


def _typed(path: Path, records: list[Record]) -> PairSet:
    keys = set(records[0][1])
    if {"query", "positive"} <= keys:
        kind: Kind = "queries"
    elif {"sentence1", "sentence2", "score"} <= keys:
        kind = "scored"
    elif {"sentence1", "sentence2", "label"} <= keys:
        kind = "labelled"
    else:
        raise InputError(f"{path}:{records[0][0]}: columns {sorted(keys)} are not {EXPECTED}")
    first, second, scores, negatives = [], [], [], []
    for number, record in records:
        a, b = ("query", "positive") if kind == "queries" else ("sentence1", "sentence2")
        texts = [record.get(a), record.get(b)]
        if not all(isinstance(t, str) and t.strip() for t in texts):
            raise InputError(f"{path}:{number}: '{a}' and '{b}' must be non-empty text")
        first.append(str(texts[0]).strip())
        second.append(str(texts[1]).strip())
        if kind == "queries":
            extra = record.get("negative") or record.get("negatives") or []
            negatives.append([str(n) for n in (extra if isinstance(extra, list) else [extra]) if n])
            continue
        column = "score" if kind == "scored" else "label"
        try:
            value = float(str(record.get(column)))
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(f"{path}:{number}: {column} {record.get(column)!r} is not a number")
        if kind == "labelled" and value not in (0.0, 1.0):
            raise InputError(f"{path}:{number}: label must be 0 or 1, not {value:g}")
        scores.append(value)
    if kind == "scored":
        low, high = min(scores), max(scores)
        if high == low:
            raise InputError(f"{path}: every score is {low:g}: scores must vary to train on")
        scores = [(s - low) / (high - low) for s in scores]
    return PairSet(kind, first, second, scores, negatives, str(path))
