"""What travels between the driver and the workers, as plain rows: pure, no Ray.

Read records (Documents and ReadFailures, with their ``file:line`` origins) become rows of
strings so that blocks from any file share one schema; each indexed batch comes back as one
summary row (its counts and dead letters), and the driver adds the summaries into one report.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from es_semantic.indexing.readers import FieldSpec, to_document
from es_semantic.types import Document, IndexReport, ReadFailure

# Columns of a read-record row (a ReadFailure has ``reason`` set and ``raw``; a Document the rest).
RECORD_COLUMNS = ("origin", "doc_id", "texts", "metadata", "reason", "raw")
# Counts an indexed batch reports (the dead letters travel beside them, one JSON line each).
COUNTED = ("indexed", "skipped", "deduplicated", "flagged", "encoded", "truncated", "chunked",
           "passages", "duplicates")  # fmt: skip


def record_to_row(record: Document | ReadFailure) -> dict[str, str | None]:
    """A read record as a row of strings (JSON for the mappings)."""
    if isinstance(record, ReadFailure):
        raw = json.dumps(record.raw, ensure_ascii=False, default=repr)
        return {"origin": record.origin, "doc_id": None, "texts": None, "metadata": None,
                "reason": record.reason, "raw": raw}  # fmt: skip
    return {
        "origin": record.origin,
        "doc_id": record.id,
        "texts": json.dumps(dict(record.texts), ensure_ascii=False),
        "metadata": json.dumps(dict(record.metadata), ensure_ascii=False),
        "reason": None,
        "raw": None,
    }


def row_to_record(row: Mapping[str, Any]) -> Document | ReadFailure:
    """The inverse of :func:`record_to_row`."""
    if row.get("reason") is not None:
        return ReadFailure(row["origin"], row["reason"], json.loads(row["raw"] or "null"))
    return Document(row["doc_id"], json.loads(row["texts"]), json.loads(row["metadata"]),
                    row["origin"])  # fmt: skip


def is_record_rows(columns: Iterable[str]) -> bool:
    """Whether a batch holds read-record rows (else: a user's own columns)."""
    return set(RECORD_COLUMNS) <= set(columns)


def to_records(
    rows: Iterable[Mapping[str, Any]], columns: Iterable[str], spec: FieldSpec, source: str
) -> Iterator[Document | ReadFailure]:
    """A batch's rows as records: read-record rows decoded, a user's rows mapped with
    ``spec`` (origin ``source (id X)``, or ``source`` when the row has no id)."""
    if is_record_rows(columns):
        yield from (row_to_record(row) for row in rows)
        return
    for row in rows:
        doc_id = next((row[k] for k in spec.id_candidates() if row.get(k) is not None), None)
        origin = f"{source} (id {doc_id})" if doc_id is not None else source
        yield to_document(dict(row), spec, origin)


def summary_row(
    report: IndexReport, dead_letters: list[str], stopped: str | None
) -> dict[str, Any]:
    """One indexed batch: its counts, its dead letters (JSON lines) and why it stopped."""
    row: dict[str, Any] = {name: getattr(report, name) for name in COUNTED}
    row["encode_seconds"] = report.encode_seconds
    row["dead_letters"] = dead_letters
    row["stopped"] = stopped
    return row


def add_summary(report: IndexReport, row: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Add a batch's counts to ``report``; its dead letters (to go through the driver's sink,
    which counts them as failed)."""
    for name in COUNTED:
        setattr(report, name, getattr(report, name) + int(row[name]))
    report.encode_seconds += float(row["encode_seconds"])
    return [json.loads(line) for line in row["dead_letters"] or ()]


def summary_total(row: Mapping[str, Any]) -> int:
    """Input records a summary accounts for (for the progress bar)."""
    kept = int(row["indexed"]) + int(row["skipped"]) + int(row["deduplicated"])
    return kept + len(row["dead_letters"] or ())
