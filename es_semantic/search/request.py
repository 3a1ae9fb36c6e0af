"""A search request, validated: what to retrieve, how to fuse, whether to rerank (pure).

The one definition of the search options: ``Searcher.search``, the service's body and the
``search`` command are checked against it (tests/unit/test_search_options.py).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

from es_semantic.errors import InputError

Mode = Literal["keyword", "knn", "sparse", "hybrid"]
Leg = Literal["keyword", "knn", "sparse"]
LEGS: tuple[str, ...] = get_args(Leg)
HYBRID_LEGS = ("keyword", "knn")  # hybrid's legs unless ``legs`` names others
Fusion = Literal["auto", "server", "rrf", "weighted", "linear", "adaptive", "zscore"]
MODES: tuple[str, ...] = get_args(Mode)
FUSIONS: tuple[str, ...] = get_args(Fusion)
MAX_K = 10_000
MAX_QUERY_CHARS = 10_000
DEFAULT_WINDOW = 100
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


@dataclass(frozen=True)
class SearchRequest:
    """A validated search: what to retrieve, how to fuse, whether to rerank."""

    query: str
    mode: Mode = "hybrid"
    legs: Sequence[str] | None = None  # hybrid's legs (2 or 3 of LEGS); None: keyword, knn
    k: int = 10
    offset: int = 0
    fusion: Fusion = "auto"
    alpha: float = 0.5
    rank_constant: int = 60
    window: int = DEFAULT_WINDOW
    num_candidates: int | None = None
    oversample: float | None = None
    filters: Mapping[str, Any] | None = None
    source: Sequence[str] | None = None
    fields: Sequence[str] | None = None
    highlight: bool = False
    exact: bool = False
    rerank: bool = False
    rerank_top: int = 20
    rerank_budget_ms: float | None = None
    rerank_weight: float | None = None  # None: the index's tuned weight, else 1 (rerank only)

    def __post_init__(self) -> None:
        _check_choice("mode", self.mode, MODES)
        object.__setattr__(self, "legs", _checked_legs(self.legs, self.mode))
        _check_choice("fusion", self.fusion, FUSIONS)
        if not isinstance(self.query, str):
            raise InputError(f"query must be text, got {type(self.query).__name__}")
        cleaned = clean_query(self.query)
        if not cleaned:
            raise InputError("query is empty (or only whitespace/control characters)")
        if len(cleaned) > MAX_QUERY_CHARS:
            raise InputError(
                f"query is {len(cleaned)} characters; the limit is {MAX_QUERY_CHARS}: shorten it"
            )
        object.__setattr__(self, "query", cleaned)
        _check_int("k", self.k, 1, MAX_K)
        _check_int("offset", self.offset, 0, MAX_K - self.k)
        _check_int("window", self.window, 1, MAX_K)
        _check_int("rank_constant", self.rank_constant, 1, 1_000_000)
        _check_int("rerank_top", self.rerank_top, 1, MAX_K)
        if self.num_candidates is not None:
            _check_int("num_candidates", self.num_candidates, 1, MAX_K)
        if not (0.0 <= self.alpha <= 1.0) or math.isnan(self.alpha):
            raise InputError(
                f"alpha={self.alpha} must be between 0 (keyword only) and 1 (kNN only)"
            )
        if self.rerank_weight is not None and not 0.0 <= self.rerank_weight <= 1.0:
            raise InputError(
                f"rerank_weight={self.rerank_weight} must be between 0 (first stage only) "
                "and 1 (cross-encoder only)"
            )
        if self.rerank_budget_ms is not None and self.rerank_budget_ms <= 0:
            raise InputError("rerank_budget_ms must be > 0")
        if self.oversample is not None and not 1.0 <= self.oversample <= 10.0:
            raise InputError(f"oversample={self.oversample} must be from 1 to 10")

    @property
    def leg_names(self) -> tuple[str, ...]:
        """The legs searched: the mode's own, or hybrid's (keyword and knn by default)."""
        if self.mode != "hybrid":
            return (self.mode,)
        return tuple(self.legs) if self.legs else HYBRID_LEGS

    @property
    def depth(self) -> int:
        """How many candidates the final ranking needs (page end, or the rerank pool)."""
        return max(self.offset + self.k, self.rerank_top if self.rerank else 0)


def clean_query(text: str) -> str:
    """Drop control characters and normalise Unicode (NFC); keep everything else verbatim."""
    return unicodedata.normalize("NFC", _CONTROL.sub(" ", text)).strip()


def _checked_legs(legs: Sequence[str] | str | None, mode: str) -> tuple[str, ...] | None:
    """``legs`` as a tuple (a comma-separated string is split), checked against the mode."""
    if legs is None:
        return None
    names = [s.strip() for s in legs.split(",")] if isinstance(legs, str) else list(legs)
    for name in names:
        _check_choice("leg", name, LEGS)
    if len(set(names)) != len(names):
        raise InputError(f"legs={','.join(names)} names a leg twice")
    if mode != "hybrid":
        if names != [mode]:
            raise InputError(f"legs apply to mode='hybrid'; mode={mode!r} searches {mode} only")
    elif len(names) < 2:
        raise InputError("hybrid fuses two or three legs (keyword,knn,sparse); for one, use mode")
    return tuple(names)


def _check_choice(name: str, value: str, allowed: Sequence[str]) -> None:
    if value not in allowed:
        raise InputError(f"{name}={value!r} is not one of {', '.join(allowed)}")


def _check_int(name: str, value: int, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InputError(f"{name}={value!r} must be an integer from {low} to {high}")
