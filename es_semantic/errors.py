"""The exception tree of es-semantic.

    EsSemanticError
    ├── ConfigError              bad option or environment value (CLI exit 2)
    ├── MissingDependencyError   an optional extra is not installed; names the pip command
    ├── ConnectionFailedError    the cluster cannot be reached; names the URL, never secrets
    ├── IndexContractError       index and encoder disagree, or the index has no contract
    ├── EncoderError             a model folder cannot be loaded or used
    ├── InputError               a corpus file or query cannot be read (names file and line)
    ├── IndexingError            an indexing run could not go on
    │   └── MigrationRefused     a migration stopped before its alias swap
    └── SearchError              a search request failed or was invalid
        └── SearchRefused        a search this index or cluster cannot answer (the request's)

Every message says what went wrong and what to do next.
"""

from __future__ import annotations

from typing import Any


class EsSemanticError(Exception):
    """Base class of every error es-semantic raises on purpose."""


class ConfigError(EsSemanticError):
    """An option, argument or environment variable has a value we cannot use."""


class MissingDependencyError(EsSemanticError):
    """An optional dependency is missing; the message names the extra to install."""

    def __init__(self, package: str, extra: str, purpose: str) -> None:
        super().__init__(
            f"{purpose} needs the '{package}' package: pip install 'es-semantic[{extra}]'"
        )
        self.package = package
        self.extra = extra


class ConnectionFailedError(EsSemanticError):
    """The Elasticsearch cluster could not be reached or refused our credentials."""


class IndexContractError(EsSemanticError):
    """The index was built with another model/pooling/dims than the encoder in use."""


class EncoderError(EsSemanticError):
    """A model could not be loaded or run."""


class InputError(EsSemanticError):
    """Input data (a corpus file, a query, a filter) is invalid."""


def check_unicode(text: str, name: str) -> str:
    """``text``, or an :class:`InputError` naming it when no UTF-8 tokenizer or cluster takes
    it: JSON may carry a lone surrogate (``"\\ud800"``); the service and MCP refuse it at the
    door, before a batched encode pass other requests share or a client's serializer."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InputError(f"{name} is not valid Unicode (it holds a lone surrogate such as "
                         "\\ud800): send UTF-8 text") from None  # fmt: skip
    return text


class IndexingError(EsSemanticError):
    """An indexing run had to stop (documents already sent are reported).

    ``report``: the stopped run's report, every document accounted for, when there was one;
    ``reason``: what stopped it, in one line."""

    report: Any = None
    reason: str | None = None


class IndexingInterrupted(KeyboardInterrupt):
    """An indexing run was interrupted (Ctrl-C, SIGTERM); ``report`` accounts for every
    record read: indexed, skipped, or failed (in the dead-letter file)."""

    report: Any = None


class SearchError(EsSemanticError):
    """A search failed on the server or was rejected before sending."""


class SearchRefused(SearchError):
    """A search refused before sending: this index or cluster cannot answer what it asks
    (the sparse leg of an index without one, a feature of a later version or licence)."""


class MigrationRefused(IndexingError):
    """The migration stopped before the swap (failures, or the eval gate); the alias is as it
    was and the new index is kept for inspection or a re-run."""
