"""es-semantic: semantic and hybrid search for the Elasticsearch cluster you already run.

The public names load on first use (PEP 562), so ``import es_semantic`` (and the CLI's
``--help``) does not import torch or the Elasticsearch client.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from es_semantic._version import __version__

if TYPE_CHECKING:
    from es_semantic.config import ESConfig
    from es_semantic.corpus.clusters import cluster_index
    from es_semantic.corpus.duplicates import find_duplicates
    from es_semantic.corpus.pairs import DuplicatePair
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.images import ImageEncoder
    from es_semantic.encoding.reranker import CrossEncoder
    from es_semantic.errors import (
        ConfigError,
        ConnectionFailedError,
        EncoderError,
        EsSemanticError,
        IndexContractError,
        IndexingError,
        InputError,
        MigrationRefused,
        MissingDependencyError,
        SearchError,
    )
    from es_semantic.indexing.async_indexer import AsyncIndexer
    from es_semantic.indexing.indexer import Indexer
    from es_semantic.migration.migrator import EvalGate, migrate
    from es_semantic.schema.contract import IndexContract
    from es_semantic.search.searcher import AsyncSearcher, Searcher
    from es_semantic.types import Document, Hit, IndexReport, SearchResult

_ERRORS = (
    "ConfigError ConnectionFailedError EncoderError EsSemanticError IndexContractError "
    "IndexingError InputError MigrationRefused MissingDependencyError SearchError"
).split()
_WHERE: dict[str, str] = {
    "ESConfig": "es_semantic.config",
    "DuplicatePair": "es_semantic.corpus.pairs",
    "cluster_index": "es_semantic.corpus.clusters",
    "find_duplicates": "es_semantic.corpus.duplicates",
    "Encoder": "es_semantic.encoding.encoder",
    "ImageEncoder": "es_semantic.encoding.images",
    "CrossEncoder": "es_semantic.encoding.reranker",
    **dict.fromkeys(_ERRORS, "es_semantic.errors"),
    "AsyncIndexer": "es_semantic.indexing.async_indexer",
    "Indexer": "es_semantic.indexing.indexer",
    "EvalGate": "es_semantic.migration.migrator",
    "migrate": "es_semantic.migration.migrator",
    "IndexContract": "es_semantic.schema.contract",
    "AsyncSearcher": "es_semantic.search.searcher",
    "Searcher": "es_semantic.search.searcher",
    **dict.fromkeys(["Document", "Hit", "IndexReport", "SearchResult"], "es_semantic.types"),
}

__all__ = [
    "AsyncIndexer",
    "AsyncSearcher",
    "ConfigError",
    "ConnectionFailedError",
    "CrossEncoder",
    "Document",
    "DuplicatePair",
    "ESConfig",
    "Encoder",
    "EncoderError",
    "EsSemanticError",
    "EvalGate",
    "Hit",
    "ImageEncoder",
    "IndexContract",
    "IndexContractError",
    "IndexReport",
    "Indexer",
    "IndexingError",
    "InputError",
    "MigrationRefused",
    "MissingDependencyError",
    "SearchError",
    "SearchResult",
    "Searcher",
    "__version__",
    "cluster_index",
    "find_duplicates",
    "migrate",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'es_semantic' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return list(__all__)
