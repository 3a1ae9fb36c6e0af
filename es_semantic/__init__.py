"""es-semantic: semantic and hybrid search for the Elasticsearch cluster you already run."""

from es_semantic._version import __version__
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

__all__ = [
    "ConfigError",
    "ConnectionFailedError",
    "CrossEncoder",
    "Encoder",
    "EncoderError",
    "EsSemanticError",
    "IndexContractError",
    "IndexingError",
    "InputError",
    "MissingDependencyError",
    "SearchError",
    "__version__",
]
