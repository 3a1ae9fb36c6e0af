"""The index contract: how vectors in an index were made, kept in mapping ``_meta``.

Pure: build from an encoder config, (de)serialise, and compare with the encoder in use.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol, get_args

from es_semantic._version import __version__
from es_semantic.config import EncoderConfig
from es_semantic.errors import ConfigError, IndexContractError

Similarity = Literal["cosine", "dot_product", "l2_norm", "max_inner_product"]
SIMILARITIES: tuple[str, ...] = get_args(Similarity)
IndexOptionsType = Literal[
    "hnsw", "int8_hnsw", "int4_hnsw", "bbq_hnsw", "flat", "int8_flat", "int4_flat", "bbq_flat",
    "bbq_disk",
]  # fmt: skip
INDEX_OPTIONS: tuple[str, ...] = get_args(IndexOptionsType)
Chunking = Literal["none", "nested"]
CHUNKINGS: tuple[str, ...] = get_args(Chunking)
METADATA_TYPES = ("keyword", "long", "integer", "double", "float", "date", "boolean", "text")
META_KEY = "es_semantic"
VECTOR_FIELD = "embedding"
PASSAGES_FIELD = "passages"  # nested: one object per passage, {"text", "embedding"}
SPARSE_FIELD = "sparse"  # the learned sparse leg's sparse_vector field
IMAGE_FIELD = "path"  # an image index's keyword field holding each image's path
IMAGE_TEXT_FIELDS = ("caption",)  # an image index's default text field (optional, for BM25)
# "text": text vectors; "text+image": a CLIP model's space, texts and images alike
MODALITIES = ("text", "text+image")
DEFAULT_CHUNK_OVERLAP = 32
# Passages of 128 tokens by default: MiniLM-class models were trained at 128 tokens, and on
# SciFact 128-token passages gave kNN nDCG@10 0.668 against 0.648 at the 256-token window.
DEFAULT_CHUNK_TOKENS = 128
MAX_PASSAGES = 1000  # passages kept per document; more are dropped and counted as truncated
# What must be equal between an index and the encoder that queries or feeds it.
MIN_SPARSE_WEIGHT = 1.1754944e-38  # the smallest positive normal float32: ES refuses less
CHECKED_FIELDS = ("dims", "pooling", "normalize", "query_prefix", "document_prefix")
# What must be equal between a sparse leg and the sparse encoder that queries or feeds it.
SPARSE_CHECKED = ("model_fingerprint", "pooling", "activation")
SPARSE_INDEX_CHECKED = ("max_length", "document_prefix", "max_active_dims")


class SparseModel(Protocol):
    """What a sparse leg records of its encoder (``SparseEncoder.spec``)."""

    @property
    def name(self) -> str: ...
    @property
    def fingerprint(self) -> str: ...
    @property
    def max_length(self) -> int: ...
    @property
    def pooling(self) -> str: ...
    @property
    def activation(self) -> str: ...
    @property
    def query_mode(self) -> str: ...
    @property
    def query_prefix(self) -> str: ...
    @property
    def document_prefix(self) -> str: ...


@dataclass(frozen=True)
class SparseLeg:
    """A learned sparse leg: how its ``sparse_vector`` field was made and is queried.

    One vector per document (``layout="document"``): the whole text in the sparse model's
    window, also on chunked indices (on SciFact this beat pooling the passages' vectors and
    one vector per passage: docs/guides/sparse.md). Feature names are the model's tokens with
    ``%`` and ``.`` percent-escaped (``escape_feature``): Elasticsearch before 8.16 refuses
    dots in them.
    ``prune``: the query's token pruning (``tokens_freq_ratio_threshold``,
    ``tokens_weight_threshold``), as the ``sparse_vector`` query documents it."""

    model_name: str
    model_fingerprint: str
    max_length: int
    pooling: str = "max"
    activation: str = "relu"
    query_mode: str = "model"
    query_prefix: str = ""
    document_prefix: str = ""
    field: str = SPARSE_FIELD
    layout: Literal["document"] = "document"
    max_active_dims: int | None = None
    prune: bool = False
    tokens_freq_ratio_threshold: float = 5.0
    tokens_weight_threshold: float = 0.4
    feature_escape: Literal["percent-dot"] = "percent-dot"
    # where the model was read from, to load it again without --sparse-model: the folder, and
    # for a folder inside an installed Python package "package/sub/folder" (no secrets)
    model_path: str | None = None
    model_package: str | None = None

    def __post_init__(self) -> None:
        if self.layout != "document":
            raise ConfigError(f"sparse layout={self.layout!r} is not 'document'")
        if not 1 <= self.tokens_freq_ratio_threshold <= 100:
            raise ConfigError("tokens_freq_ratio_threshold must be from 1 to 100")
        if not 0 <= self.tokens_weight_threshold <= 1:
            raise ConfigError("tokens_weight_threshold must be from 0 to 1")
        if self.max_active_dims is not None and self.max_active_dims < 1:
            raise ConfigError("max_active_dims must be >= 1")
        for name in ("model_path", "model_package"):  # read from _meta: anyone's to write
            if not isinstance(getattr(self, name), str | None):
                raise ConfigError(f"sparse {name} must be a folder name (text) or null")

    @classmethod
    def from_model(cls, spec: SparseModel, **options: Any) -> SparseLeg:
        """The leg an index gets for a sparse encoder's ``spec`` (options: field, pruning)."""
        options = {k: v for k, v in options.items() if v is not None}
        return cls(
            model_name=spec.name, model_fingerprint=spec.fingerprint,
            max_length=spec.max_length, pooling=spec.pooling, activation=spec.activation,
            query_mode=spec.query_mode, query_prefix=spec.query_prefix,
            document_prefix=spec.document_prefix, model_path=getattr(spec, "folder", None),
            model_package=getattr(spec, "package", None), **options,
        )  # fmt: skip

    def check(
        self, spec: SparseModel, index: str, *, for_indexing: bool = False,
        max_active_dims: int | None = None,
    ) -> None:  # fmt: skip
        """Refuse a sparse encoder whose vectors would not match this leg's."""
        mine: dict[str, Any] = {k: getattr(self, k) for k in SPARSE_CHECKED}
        theirs: dict[str, Any] = {"model_fingerprint": spec.fingerprint, "pooling": spec.pooling,
                                  "activation": spec.activation}  # fmt: skip
        if for_indexing:
            mine.update({k: getattr(self, k) for k in SPARSE_INDEX_CHECKED})
            theirs.update(max_length=spec.max_length, document_prefix=spec.document_prefix,
                          max_active_dims=max_active_dims)  # fmt: skip
        diffs = [f"{k}: index {mine[k]!r}, encoder {theirs[k]!r}" for k in mine
                 if mine[k] != theirs[k]]  # fmt: skip
        if diffs:
            raise IndexContractError(
                f"index {index!r} has a sparse leg built with {self.model_name} "
                f"({self.model_fingerprint}); the sparse model in use ({spec.name}) differs: "
                f"{'; '.join(diffs)}. Use --sparse-model with the index's model (see "
                "`es-semantic info INDEX`)."
            )


def escape_feature(token: str) -> str:
    """A token as a ``sparse_vector`` feature name: ``%`` -> ``%25``, ``.`` -> ``%2E``
    (reversible; Elasticsearch 8.15 refuses dots in feature names)."""
    return token.replace("%", "%25").replace(".", "%2E")


def escape_vector(vector: Mapping[str, float]) -> dict[str, float]:
    """A ``{token: weight}`` vector with escaped feature names, weights a normal float32 > 0
    (Elasticsearch refuses zero, negative and subnormal weights)."""
    return {escape_feature(t): float(w) for t, w in vector.items() if w >= MIN_SPARSE_WEIGHT}


def max_pool(vectors: Sequence[Mapping[str, float]]) -> dict[str, float]:
    """One vector for several (a document's passages): each token's largest weight, as
    SPLADE's max pooling over one long text would give."""
    out: dict[str, float] = {}
    for vector in vectors:
        for token, weight in vector.items():
            if weight > out.get(token, 0.0):
                out[token] = weight
    return out


@dataclass(frozen=True)
class IndexContract:
    """Everything needed to encode queries and documents compatibly with an index."""

    model_name: str
    model_fingerprint: str
    pooling: str
    normalize: bool
    max_length: int
    query_prefix: str
    document_prefix: str
    dims: int
    similarity: Similarity = "cosine"
    vector_field: str = VECTOR_FIELD
    text_fields: tuple[str, ...] = ("title", "text")
    metadata_fields: Mapping[str, str] = field(default_factory=dict)
    index_options: str | None = None  # None: the cluster's default for the version and dims
    analyzer: str = "standard"
    keep_vectors_in_source: bool = False
    chunking: Chunking = "none"
    chunk_tokens: int = 0
    chunk_overlap: int = 0
    backend: str = "torch"  # how documents were encoded: recorded for `info`, not checked
    quantize: str = "none"
    # the documents' precision: recorded, not checked (queries at another precision of the same
    # model are compatible); contracts from before it was recorded read as float32
    precision: str = "float32"
    sparse: SparseLeg | None = None  # a learned sparse leg, when the index has one
    # "text+image": an image index (a CLIP model); ``image_field`` holds each image's path.
    # Contracts from before images were indexed read as "text", with no image field.
    modality: str = "text"
    image_field: str | None = None
    es_semantic_version: str = __version__

    def __post_init__(self) -> None:
        if self.similarity not in SIMILARITIES:
            raise ConfigError(
                f"similarity={self.similarity!r} is not one of {', '.join(SIMILARITIES)}"
            )
        if self.similarity == "dot_product" and not self.normalize:
            raise ConfigError(
                "similarity='dot_product' needs unit-length vectors, but this encoder does not "
                "normalise: use cosine, or normalize=True"
            )
        if self.index_options is not None and self.index_options not in INDEX_OPTIONS:
            raise ConfigError(
                f"index_options={self.index_options!r} is not one of {', '.join(INDEX_OPTIONS)}"
            )
        self._check_chunking()
        self._check_modality()
        if not self.text_fields:
            raise ConfigError("at least one text field is needed")
        for name, kind in self.metadata_fields.items():
            if kind not in METADATA_TYPES:
                raise ConfigError(
                    f"metadata field {name!r} has type {kind!r}; use one of "
                    f"{', '.join(METADATA_TYPES)}"
                )
        reserved = {self.vector_field, "content_hash", PASSAGES_FIELD}
        if self.image_field is not None:
            reserved.add(self.image_field)
        if self.sparse is not None:
            reserved.add(self.sparse.field)
        clash = reserved & (set(self.text_fields) | set(self.metadata_fields))
        if clash or set(self.text_fields) & set(self.metadata_fields):
            raise ConfigError(f"field names overlap or are reserved: {sorted(clash) or '...'}")

    def _check_modality(self) -> None:
        if self.modality not in MODALITIES:
            raise ConfigError(f"modality={self.modality!r} is not one of {', '.join(MODALITIES)}")
        if self.modality == "text" and self.image_field is not None:
            raise ConfigError("an image field needs an image model (modality 'text+image')")
        if self.modality == "text+image":
            if not self.image_field:
                raise ConfigError("an image index needs an image field (the images' paths)")
            if self.chunking != "none" or self.sparse is not None:
                raise ConfigError(
                    "an image index holds one vector per image: no chunking, no sparse leg"
                )

    @property
    def images(self) -> bool:
        """Whether documents are images (a CLIP index), found by text or by image."""
        return self.modality == "text+image"

    def _check_chunking(self) -> None:
        if self.chunking not in CHUNKINGS:
            raise ConfigError(f"chunking={self.chunking!r} is not one of {', '.join(CHUNKINGS)}")
        if self.chunking == "none":
            return
        if not 8 <= self.chunk_tokens <= self.max_length:
            raise ConfigError(
                f"chunk_tokens={self.chunk_tokens} must be from 8 to the model's max_length "
                f"({self.max_length})"
            )
        if not 0 <= self.chunk_overlap <= self.chunk_tokens // 2:
            raise ConfigError(
                f"chunk_overlap={self.chunk_overlap} must be from 0 to half of chunk_tokens "
                f"({self.chunk_tokens // 2})"
            )

    @property
    def nested(self) -> bool:
        """Whether documents carry their passages' vectors in a nested field."""
        return self.chunking == "nested"

    @property
    def vector_path(self) -> str:
        """The dense_vector field that kNN searches: top-level, or inside the passages."""
        return f"{PASSAGES_FIELD}.{self.vector_field}" if self.nested else self.vector_field

    @classmethod
    def from_encoder(cls, config: EncoderConfig, **options: Any) -> IndexContract:
        """The contract an index gets when created for ``config``.

        Documents are held as passages unless ``chunking="none"``: DEFAULT_CHUNK_TOKENS tokens
        (at most the model's window) with DEFAULT_CHUNK_OVERLAP tokens of overlap."""
        options = {k: v for k, v in options.items() if v is not None}
        modality = getattr(config, "modality", "text")
        if modality != "text":  # one vector per image, its path beside it
            options.update(modality=modality, chunking=options.get("chunking", "none"))
            options.setdefault("image_field", IMAGE_FIELD)
            options.setdefault("text_fields", IMAGE_TEXT_FIELDS)
        if options.setdefault("chunking", "nested") == "nested":
            default_tokens = min(DEFAULT_CHUNK_TOKENS, config.max_length)
            tokens = options.setdefault("chunk_tokens", default_tokens)
            options.setdefault("chunk_overlap", min(DEFAULT_CHUNK_OVERLAP, tokens // 4))
        return cls(
            model_name=config.model_name, model_fingerprint=config.fingerprint,
            pooling=config.pooling, normalize=config.normalize, max_length=config.max_length,
            query_prefix=config.query_prefix, document_prefix=config.document_prefix,
            dims=config.dim, backend=config.backend, quantize=config.quantize,
            precision=config.precision, **options,
        )  # fmt: skip

    def to_meta(self) -> dict[str, Any]:
        data = asdict(self)
        data["text_fields"] = list(self.text_fields)
        data["metadata_fields"] = dict(self.metadata_fields)
        return {META_KEY: data}

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None, index: str) -> IndexContract:
        data = (meta or {}).get(META_KEY)
        if not isinstance(data, Mapping):
            raise IndexContractError(
                f"index {index!r} has no es-semantic contract in its mapping _meta: it was not "
                "created by es-semantic. Create one with `es-semantic create-index` or index "
                "into a new index name."
            )
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in data.items() if k in known}
        values["text_fields"] = tuple(values.get("text_fields") or ("text",))
        try:
            if isinstance(values.get("sparse"), Mapping):
                fields = SparseLeg.__dataclass_fields__
                values["sparse"] = SparseLeg(
                    **{k: v for k, v in values["sparse"].items() if k in fields}
                )
            return cls(**values)
        except (TypeError, ConfigError) as exc:
            raise IndexContractError(f"index {index!r} has an unreadable contract: {exc}") from None

    def differences(self, config: EncoderConfig, *, for_indexing: bool) -> list[str]:
        """Human-readable differences between this contract and an encoder config."""
        mine = {"dims": self.dims, **{k: getattr(self, k) for k in CHECKED_FIELDS[1:]}}
        theirs = {"dims": config.dim, **{k: getattr(config, k) for k in CHECKED_FIELDS[1:]}}
        if for_indexing:
            mine["max_length"], theirs["max_length"] = self.max_length, config.max_length
        diffs = [f"{k}: index {mine[k]!r}, encoder {theirs[k]!r}" for k in mine
                 if mine[k] != theirs[k]]  # fmt: skip
        modality = getattr(config, "modality", "text")
        if self.modality != modality:
            diffs.insert(0, f"modality: index {self.modality!r}, encoder {modality!r}")
        if self.model_fingerprint != config.fingerprint:
            diffs.insert(
                0,
                f"model: index {self.model_name} ({self.model_fingerprint}), "
                f"encoder {config.model_name} ({config.fingerprint})",
            )
        return diffs

    @property
    def vector_space(self) -> tuple[str, int, str]:
        """What makes vectors of two indices comparable: the model, its dims and pooling."""
        return (self.model_fingerprint, self.dims, self.pooling)

    @property
    def query_space(self) -> tuple[Any, ...]:
        """What one query sent to several indices at once must fit on each (both models)."""
        sparse = self.sparse
        leg = sparse and (sparse.model_fingerprint, sparse.pooling, sparse.activation,
                          sparse.query_mode, sparse.query_prefix, sparse.field)  # fmt: skip
        return (self.model_fingerprint, self.modality, *(getattr(self, k) for k in
                CHECKED_FIELDS), self.vector_path, self.similarity, leg)  # fmt: skip

    def check(self, config: EncoderConfig, index: str, *, for_indexing: bool = False) -> None:
        """Refuse an encoder that would make vectors incompatible with this index."""
        diffs = self.differences(config, for_indexing=for_indexing)
        if diffs:
            kind = "text+image, CLIP" if self.images else self.pooling
            raise IndexContractError(
                f"index {index!r} was built with {self.model_name} ({self.dims}-d, {kind}); "
                f"the encoder in use differs: {'; '.join(diffs)}. Use the same model and "
                "options (see `es-semantic info INDEX`), or index into a new index."
            )


def missing_index_error(index: str) -> IndexContractError:
    """The one error for an index (or alias) that is not there, saying how to make it."""
    return IndexContractError(
        f"index {index!r} does not exist: create it with `es-semantic create-index {index}` "
        "or `es-semantic index` (which creates it)"
    )


def contract_from_mapping_response(body: dict[str, Any], index: str) -> IndexContract:
    """Pick the contract from a get-mapping response; all indices behind an alias must agree."""
    contracts = {
        name: IndexContract.from_meta(entry.get("mappings", {}).get("_meta"), name)
        for name, entry in sorted(body.items())
    }
    if not contracts:
        raise missing_index_error(index)
    if len({c.query_space for c in contracts.values()}) > 1:  # one query goes to them all
        raise IndexContractError(
            f"{index!r} covers indices whose contracts differ (model, query options, vector "
            f"field, similarity or sparse model): {sorted(contracts)}; search them one by one"
        )
    return next(iter(contracts.values()))
