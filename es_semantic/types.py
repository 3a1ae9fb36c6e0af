"""The values that flow through es-semantic: documents in, reports and hits out."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class Document:
    """One document to index: an id (None: derive from content), text fields, metadata.

    ``origin`` says where it came from (``corpus.jsonl:12``) for reports and dead letters.
    """

    id: str | None
    texts: Mapping[str, str]
    metadata: Mapping[str, Any] = field(default_factory=dict)
    origin: str = ""
    # an image index's document: the image file's bytes (encoded by the CLIP model, hashed for
    # the unchanged check; never written to the index or a dead letter)
    image: bytes | None = field(default=None, repr=False, compare=False)

    def full_text(self) -> str:
        """The text that is encoded: non-empty text fields joined in order."""
        return " ".join(t.strip() for t in self.texts.values() if t and t.strip())


@dataclass(frozen=True)
class ReadFailure:
    """An input record that could not become a Document (bad JSON, no text, ...)."""

    origin: str
    reason: str
    raw: Any = None


@dataclass(frozen=True)
class FailedDocument:
    """A document that was not indexed, and why: one line of the dead-letter file."""

    source: str
    reason: str
    document: Any

    def to_json(self) -> dict[str, Any]:
        return {"source": self.source, "reason": self.reason, "document": self.document}


@dataclass
class IndexReport:
    """What an indexing run did with every input record; the numbers add up to the input."""

    index: str
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    encoded: int = 0
    truncated: int = 0  # documents whose text was cut (window or passage limit)
    chunked: int = 0  # documents split into more than one passage (chunked indices)
    passages: int = 0  # passages encoded (chunked indices)
    duplicates: int = 0
    deduplicated: int = 0  # near-duplicates not indexed (--dedupe skip)
    flagged: int = 0  # near-duplicates indexed with duplicate_of (--dedupe flag)
    seconds: float = 0.0
    encode_seconds: float = 0.0
    dead_letter: str | None = None
    duplicates_file: str | None = None  # the near-duplicates --dedupe skip left out
    encoder: dict[str, str] | None = None  # model, backend, quantize, precision that ran
    failures: list[FailedDocument] = field(default_factory=list)
    near_duplicates: list[dict[str, Any]] = field(default_factory=list)  # the first 1,000
    # (every one skipped is in duplicates_file)

    @property
    def total(self) -> int:
        return self.indexed + self.skipped + self.failed + self.deduplicated

    @property
    def ok(self) -> bool:
        return self.failed == 0

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["failures"] = [f.to_json() for f in self.failures[:20]]
        data["total"] = self.total
        data["docs_per_second"] = round(self.total / self.seconds, 2) if self.seconds else None
        return data


@dataclass(frozen=True)
class Hit:
    """One search result: final score, source, highlights and every stage's score and rank.

    ``passage``: for chunked indices, the text of the document's best-matching passage."""

    id: str
    score: float
    source: Mapping[str, Any] = field(default_factory=dict)
    highlights: Mapping[str, list[str]] = field(default_factory=dict)
    scores: Mapping[str, float] = field(default_factory=dict)
    ranks: Mapping[str, int] = field(default_factory=dict)
    passage: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "passage": self.passage,
            "score": self.score,
            "source": dict(self.source),
            "scores": dict(self.scores),
            "ranks": dict(self.ranks),
            "highlights": dict(self.highlights),
        }


@dataclass(frozen=True)
class SearchResult:
    """Hits of one query with the mode used, totals, timings per stage and any warnings."""

    mode: str
    hits: list[Hit]
    total: int | None = None
    took_ms: dict[str, float] = field(default_factory=dict)
    fusion: str | None = None
    reranked: bool = False
    warnings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode,
            "fusion": self.fusion,
            "total": self.total,
            "reranked": self.reranked,
            "hits": [h.to_json() for h in self.hits],
            "took_ms": {k: round(v, 3) for k, v in self.took_ms.items()},
            "warnings": list(self.warnings),
        }
