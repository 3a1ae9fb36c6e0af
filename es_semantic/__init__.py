"""es-semantic: semantic and hybrid search for the Elasticsearch cluster you already run."""

from es_semantic._version import __version__
from es_semantic.config import ESConfig
from es_semantic.encoding.encoder import Encoder
from es_semantic.encoding.reranker import CrossEncoder
from es_semantic.errors import (
    ConfigError,
    ConnectionFailedError,
    EncoderError,
    EsSemanticError,
    IndexContractError,
    IndexingError,
    InputError,
    MissingDependencyError,
    SearchError,
)
from es_semantic.indexing.async_indexer import AsyncIndexer
from es_semantic.indexing.contract import IndexContract
from es_semantic.indexing.indexer import Indexer
from es_semantic.indexing.migrator import EvalGate, MigrationRefused, migrate
from es_semantic.search.searcher import AsyncSearcher, Searcher
from es_semantic.types import Document, Hit, IndexReport, SearchResult

__all__ = [
    "AsyncIndexer",
    "AsyncSearcher",
    "ConfigError",
    "ConnectionFailedError",
    "CrossEncoder",
    "Document",
    "ESConfig",
    "Encoder",
    "EncoderError",
    "EsSemanticError",
    "EvalGate",
    "Hit",
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
    "migrate",
]
