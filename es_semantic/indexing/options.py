"""Every option of an indexing run, validated once: what ``Indexer``'s keywords build and what
the Ray engine hands its workers (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

from es_semantic.errors import ConfigError

VECTOR_FORMATS = ("auto", "json", "base64")
DedupeMode = Literal["flag", "skip"]
DUPLICATE_FIELD = "duplicate_of"  # the keyword field --dedupe flag writes
# Options that need the whole run in one process, and why (the Ray engine refuses them).
LOCAL_ONLY = {
    "track_ids": "--delete-missing needs every id in one process: use the local engine "
    "(--engine local)",
    "dedupe_threshold": "near-duplicate checks (--dedupe-threshold) compare across the whole "
    "run: use the local engine (--engine local), or `es-semantic duplicates` after indexing",
}


@dataclass(frozen=True)
class IndexOptions:
    """How to index (see ``Indexer`` for each option). ``report_failures``: how many failed
    documents the report lists (None: all; the dead-letter file holds every one anyway)."""

    id_field: str | None = None
    text_fields: tuple[str, ...] | None = None
    metadata_fields: Mapping[str, str] = field(default_factory=dict)
    similarity: str | None = None
    index_options: str | None = None
    analyzer: str | None = None
    keep_vectors_in_source: bool | None = None
    chunking: str | None = None
    chunk_tokens: int | None = None
    chunk_overlap: int | None = None
    batch_size: int = 256
    chunk_size: int = 500
    max_chunk_bytes: int = 20 * 1024 * 1024
    max_retries: int = 8
    initial_backoff: float = 1.0
    max_backoff: float = 60.0
    dead_letter: str | Path | None = None
    progress: bool = False
    refresh: bool = True
    track_ids: bool = False
    dedupe_threshold: float | None = None
    dedupe: DedupeMode = "flag"
    duplicates_file: str | Path | None = None
    vector_format: str = "auto"
    senders: int = 2
    report_failures: int | None = 1000
    # The learned sparse leg: the encoder itself (local runs), or its folder and SparseEncoder
    # options (what Ray workers load); ``sparse_leg``: the new index's SparseLeg options
    # (field, prune, tokens_freq_ratio_threshold, tokens_weight_threshold).
    sparse_encoder: Any = field(default=None, compare=False, repr=False)
    sparse_model: str | None = None
    sparse_options: Mapping[str, Any] = field(default_factory=dict)
    sparse_leg: Mapping[str, Any] = field(default_factory=dict)
    image_field: str | None = None  # a new image index's path field [path]

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.chunk_size < 1 or self.senders < 1:
            raise ConfigError("batch_size, chunk_size and senders must be >= 1")
        if self.vector_format not in VECTOR_FORMATS:
            raise ConfigError(
                f"vector_format={self.vector_format!r} is not one of {', '.join(VECTOR_FORMATS)}"
            )
        if self.dedupe not in ("flag", "skip"):
            raise ConfigError(f"dedupe={self.dedupe!r} is not one of flag, skip")
        fields = self.metadata_fields
        meta = dict(fields) if isinstance(fields, Mapping) else dict.fromkeys(fields, "keyword")
        if self.dedupe_threshold is not None and self.dedupe == "flag":
            meta.setdefault(DUPLICATE_FIELD, "keyword")
        object.__setattr__(self, "metadata_fields", meta)
        object.__setattr__(self, "text_fields", tuple(self.text_fields or ()) or None)

    @classmethod
    def of(cls, metadata_fields: Mapping[str, str] | Sequence[str] = (), **options: Any) -> (
        IndexOptions):  # fmt: skip
        """From keywords; ``metadata_fields`` may be names (keyword) or {name: type}."""
        return cls(metadata_fields=metadata_fields, **options)  # type: ignore[arg-type]

    @property
    def flags_duplicates(self) -> bool:
        return self.dedupe_threshold is not None and self.dedupe == "flag"

    def contract_options(self) -> dict[str, Any]:
        """The options that make a new index's contract."""
        return {
            "text_fields": self.text_fields,
            "metadata_fields": dict(self.metadata_fields),
            "similarity": self.similarity,
            "index_options": self.index_options,
            "analyzer": self.analyzer,
            "keep_vectors_in_source": self.keep_vectors_in_source,
            "chunking": self.chunking,
            "chunk_tokens": self.chunk_tokens,
            "chunk_overlap": self.chunk_overlap,
            "image_field": self.image_field,
        }

    def bulk_options(self) -> dict[str, Any]:
        """``helpers.streaming_bulk``'s options."""
        return {
            "chunk_size": self.chunk_size,
            "max_chunk_bytes": self.max_chunk_bytes,
            "max_retries": self.max_retries,
            "initial_backoff": self.initial_backoff,
            "max_backoff": self.max_backoff,
        }

    def refuse_local_only(self) -> None:
        """A one-line error for an option the Ray engine cannot run."""
        for name, why in LOCAL_ONLY.items():
            value = getattr(self, name)
            if value is not None and value is not False:  # a threshold of 0.0 is one too
                raise ConfigError(f"{name} is not available with the Ray engine: {why}")

    def for_batches(self) -> IndexOptions:
        """What a Ray worker indexes each batch with: the driver owns the run's files, bar and
        refresh; every failure travels back in the batch's report."""
        sparse = self.sparse_encoder  # a worker loads its own from the folder and options
        return replace(self, dead_letter=None, duplicates_file=None, progress=False,
                       refresh=False, report_failures=None, sparse_encoder=None,
                       sparse_model=self.sparse_model if sparse is None else sparse.source,
                       sparse_options=self.sparse_options if sparse is None
                       else sparse.load_options)  # fmt: skip

    def sparse_spec(self) -> Any:
        """The sparse model's SparseSpec (None: no sparse leg), read without loading it."""
        if self.sparse_encoder is not None:
            return self.sparse_encoder.spec
        if self.sparse_model is None:
            return None
        from es_semantic.encoding.sparse import describe_sparse

        return describe_sparse(self.sparse_model, **self.sparse_options)

    def load_sparse(self) -> Any:
        """The sparse encoder: the one given, else loaded from ``sparse_model`` (None: no
        sparse leg). A Ray worker loads its own: an encoder does not travel."""
        if self.sparse_encoder is not None or self.sparse_model is None:
            return self.sparse_encoder
        from es_semantic.encoding.sparse import SparseEncoder  # torch: only when asked for

        return SparseEncoder(self.sparse_model, **self.sparse_options)
