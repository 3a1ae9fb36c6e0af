"""Client-side fusion of ranked lists (pure): reciprocal rank fusion, and weighted sums of
scores min-max scaled (``weighted``, ``adaptive``) or scaled by their spread (``zscore``)."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field


@dataclass(frozen=True)
class LegHit:
    """One hit of one retrieval leg."""

    id: str
    score: float


@dataclass
class Fused:
    """A fused candidate: final score plus each leg's rank (1-based) and raw score."""

    id: str
    score: float = 0.0
    ranks: dict[str, int] = field(default_factory=dict)
    scores: dict[str, float] = field(default_factory=dict)


def _collect(legs: Mapping[str, Sequence[LegHit]], window: int | None) -> dict[str, Fused]:
    fused: dict[str, Fused] = {}
    for leg, hits in legs.items():
        seen: set[str] = set()
        for hit in hits[:window] if window else hits:
            if hit.id in seen:  # a duplicate within one leg keeps its best rank
                continue
            seen.add(hit.id)
            entry = fused.setdefault(hit.id, Fused(hit.id))
            entry.ranks[leg] = len(seen)
            entry.scores[leg] = hit.score
    return fused


def _ordered(fused: dict[str, Fused], leg_order: Sequence[str]) -> list[Fused]:
    # ties: higher score, then ranks in the legs' priority order, then id (deterministic)
    missing = 1 << 30
    return sorted(
        fused.values(),
        key=lambda f: (-f.score, tuple(f.ranks.get(leg, missing) for leg in leg_order), f.id),
    )


def rrf(
    legs: Mapping[str, Sequence[LegHit]], *, rank_constant: int = 60, window: int | None = None
) -> list[Fused]:
    """Reciprocal rank fusion: score = sum over legs of 1 / (rank_constant + rank).

    >>> [f.id for f in rrf({"a": [LegHit("x", 9), LegHit("y", 1)], "b": [LegHit("y", 3)]})]
    ['y', 'x']
    """
    if rank_constant < 1:
        raise ValueError("rank_constant must be >= 1")
    fused = _collect(legs, window)
    for entry in fused.values():
        entry.score = sum(1.0 / (rank_constant + r) for r in entry.ranks.values())
    return _ordered(fused, list(legs))


def min_max(scores: Sequence[float]) -> list[float]:
    """Scale to [0, 1]; all-equal scores become 1.0 (every hit equally good on that leg)."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:
        return [1.0] * len(scores)
    return [(s - low) / (high - low) for s in scores]


def std_scaled(scores: Sequence[float]) -> list[float]:
    """Each score's distance above the list's lowest, in standard deviations of the list (a
    z-score shifted so the last hit is 0); all-equal scores become 1.0. Unlike min-max, a
    leg's top hit scores high only when it stands out from the leg's other hits."""
    if not scores:
        return []
    low, high = min(scores), max(scores)
    if high == low:  # not std == 0: the mean of equal floats may differ from them by rounding
        return [1.0] * len(scores)
    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    return [(s - low) / std for s in scores]


Scale = Callable[[Sequence[float]], list[float]]


def weighted(
    legs: Mapping[str, Sequence[LegHit]], weights: Mapping[str, float], *,
    window: int | None = None, scale: Scale = min_max,
) -> list[Fused]:  # fmt: skip
    """Weighted sum of each leg's scores scaled by ``scale`` (min-max unless told); a leg that
    missed a hit adds 0 (its floor).

    With weights {"knn": alpha, "keyword": 1 - alpha}, alpha=1 ranks exactly like kNN alone.
    """
    if any(w < 0 for w in weights.values()):
        raise ValueError("fusion weights must be >= 0")
    fused = _collect(legs, window)
    for leg, hits in legs.items():
        kept = hits[:window] if window else hits
        unique = {h.id: h.score for h in reversed(kept)}  # best (first) occurrence wins
        normalised = dict(zip(unique, scale(list(unique.values())), strict=True))
        for doc_id, value in normalised.items():
            fused[doc_id].score += weights.get(leg, 0.0) * value
    ordered = _ordered(fused, sorted(legs, key=lambda leg: -weights.get(leg, 0.0)))
    # a leg with weight 0 must not change the order of the others: drop hits only it found
    active = {leg for leg, w in weights.items() if w > 0}
    return [f for f in ordered if active & set(f.ranks)] if active else ordered


def interpolate(first: Sequence[float], second: Sequence[float], weight: float) -> list[float]:
    """``(1 - weight) * first + weight * second``, each min-max scaled over the list first.

    weight 0 keeps ``first``'s order, 1 gives ``second``'s (ties broken by the caller).
    """
    if not 0.0 <= weight <= 1.0:
        raise ValueError(f"weight={weight} must be from 0 to 1")
    if len(first) != len(second):
        raise ValueError(f"{len(first)} first-stage scores but {len(second)} others")
    a, b = min_max(list(first)), min_max([float(s) for s in second])
    return [(1.0 - weight) * x + weight * y for x, y in zip(a, b, strict=True)]


ADAPTIVE_POWER = 2  # chosen by measurement: see docs/guides/fusion-and-rerank.md
GAP_RANK = 10


def leg_confidence(scores: Sequence[float]) -> float:
    """How clearly a leg singles out its best hits, from its own scores only (scale-free):
    the top score's z-score among the leg's hits times the share of the leg's score range
    between its first and its 10th hit. A flat list (a leg that cannot tell its hits apart,
    such as a model that does not know the language) scores near 0.

    >>> leg_confidence([1.0, 1.0, 1.0])
    0.0
    """
    if len(scores) < 3:
        return 0.0
    n = len(scores)
    mean = sum(scores) / n
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / n)
    spread = scores[0] - scores[-1]
    if std == 0 or spread <= 0:
        return 0.0
    z = max((scores[0] - mean) / std, 0.0)
    gap = (scores[0] - scores[min(GAP_RANK, n - 1)]) / spread
    return z * gap


def adaptive_weights(
    legs: Mapping[str, Sequence[LegHit]], window: int | None = None
) -> dict[str, float]:
    """Per-query leg weights proportional to ``leg_confidence ** ADAPTIVE_POWER`` (equal when
    no leg shows any)."""
    conf = {
        leg: leg_confidence([h.score for h in (hits[:window] if window else hits)])
        ** ADAPTIVE_POWER
        for leg, hits in legs.items()
    }
    total = sum(conf.values())
    if total <= 0:
        return dict.fromkeys(legs, 1.0 / max(len(legs), 1))
    return {leg: c / total for leg, c in conf.items()}


def adaptive(legs: Mapping[str, Sequence[LegHit]], *, window: int | None = None) -> list[Fused]:
    """Weighted min-max fusion with per-query weights from each leg's own score distribution
    (:func:`adaptive_weights`); any number of legs, by name."""
    weights = adaptive_weights(legs, window)
    if not any(weights.values()):
        weights = dict.fromkeys(legs, 1.0)
    return weighted(legs, weights, window=window)


def leg_weights(legs: Sequence[str], alpha: float) -> dict[str, float]:
    """Weighted fusion's weights, one rule for search and ``eval``: kNN ``alpha``, the other
    legs sharing ``1 - alpha`` equally (keyword + kNN: kNN alpha, keyword 1 - alpha); without
    a kNN leg, equal weights."""
    others = [leg for leg in legs if leg != "knn"]
    if len(others) == len(legs):
        return dict.fromkeys(legs, 1.0 / len(legs))
    return {"knn": alpha, **{leg: (1.0 - alpha) / max(len(others), 1) for leg in others}}


CLIENT_FUSIONS = ("rrf", "weighted", "adaptive", "zscore")
ALPHA_FUSIONS = ("weighted", "zscore")  # the fusions whose setting is the kNN weight alpha


def fuse_legs(
    method: str, legs: Mapping[str, Sequence[LegHit]], *, rank_constant: int = 60,
    alpha: float = 0.5,
) -> list[Fused]:  # fmt: skip
    """One query's legs fused on the client, one rule for search and ``eval``: ``rrf``,
    ``adaptive``, ``weighted`` or ``zscore`` (kNN ``alpha``, the other legs sharing
    ``1 - alpha``; scores min-max scaled, or by their spread: :func:`std_scaled`)."""
    if method == "rrf":
        return rrf(legs, rank_constant=rank_constant)
    if method == "adaptive":
        return adaptive(legs)
    if method == "weighted":
        return weighted(legs, leg_weights(list(legs), alpha))
    if method == "zscore":
        return weighted(legs, leg_weights(list(legs), alpha), scale=std_scaled)
    raise ValueError(f"unknown client fusion {method!r}: one of {', '.join(CLIENT_FUSIONS)}")
