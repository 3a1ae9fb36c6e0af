"""The learned sparse leg's command-line options, shared by create-index, index and search."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from es_semantic.cli.common import Settings
    from es_semantic.encoding.sparse import SparseEncoder

F = TypeVar("F", bound=Callable[..., Any])


def sparse_model_option(help_text: str) -> Callable[[F], F]:
    """``--sparse-model MODEL`` (env ``ES_SEMANTIC_SPARSE_MODEL``)."""
    return click.option("--sparse-model", envvar="ES_SEMANTIC_SPARSE_MODEL", help=help_text)


def sparse_leg_options(function: F) -> F:
    """A new index's sparse leg: query mode and the query's token pruning."""
    options = [
        click.option(
            "--sparse-query-mode",
            type=click.Choice(["model", "idf", "tokens"]),
            help="sparse queries: model = run the model; idf = the folder's static weights "
            "(inference-free models; their default); tokens = each query token, weight 1",
        ),
        click.option(
            "--sparse-prune/--no-sparse-prune",
            default=None,
            help="sparse_vector query token pruning (Elasticsearch's tokens_freq_ratio_threshold "
            "5, tokens_weight_threshold 0.4) [off]",
        ),
    ]
    for option in reversed(options):
        function = option(function)
    return function


def load_sparse(
    state: Settings, model: str | None, query_mode: str | None = None
) -> SparseEncoder | None:
    """The SparseEncoder of ``--sparse-model`` on ``--device`` (None when not given)."""
    if not model:
        return None
    from es_semantic.encoding.sparse import SparseEncoder

    device = state.values.get("device") or os.environ.get("ES_SEMANTIC_DEVICE") or None
    return SparseEncoder(model, device=device, query_mode=query_mode)


def leg_options(prune: bool | None) -> dict[str, Any]:
    """The SparseLeg options the command line sets."""
    return {"prune": prune} if prune is not None else {}


def index_sparse_options(
    state: Settings, model: str | None, query_mode: str | None, prune: bool | None
) -> dict[str, Any]:
    """``IndexOptions``' sparse keywords from the command line: the model (loaded by the
    indexer, or by each Ray worker), how to load it, and a new index's leg options."""
    if not model:
        return {}
    device = state.values.get("device") or os.environ.get("ES_SEMANTIC_DEVICE") or None
    return {
        "sparse_model": model,
        "sparse_options": {"query_mode": query_mode, "device": device},
        "sparse_leg": leg_options(prune),
    }
