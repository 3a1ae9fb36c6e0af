"""Paired bootstrap confidence interval of a per-query gain (pure)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class Gain:
    """Mean per-query gain of a system over a baseline, with a bootstrap interval."""

    mean: float
    low: float
    high: float
    queries: int
    level: float = 0.95

    @property
    def helps(self) -> bool:
        """Whether the whole interval lies above 0."""
        return self.low > 0

    def describe(self, metric: str = "ndcg@10") -> str:
        return (
            f"{metric} {self.mean:+.4f} (paired bootstrap {self.level:.0%} interval "
            f"[{self.low:+.4f}, {self.high:+.4f}], {self.queries} queries)"
        )


def paired_bootstrap(
    baseline: Mapping[str, float],
    system: Mapping[str, float],
    *,
    samples: int = 2000,
    level: float = 0.95,
    seed: int = 0,
) -> Gain:
    """Gain of ``system`` over ``baseline`` on the queries both scored: the mean of the
    per-query differences, and the percentile interval of that mean over ``samples``
    resamplings of the queries with replacement (the same draw for both systems: paired).

    >>> paired_bootstrap({"a": 0.5, "b": 0.5}, {"a": 0.7, "b": 0.7}).low > 0
    True
    """
    if not 0 < level < 1:
        raise ValueError(f"level={level} must be between 0 and 1")
    if samples < 1:
        raise ValueError("samples must be >= 1")
    shared = sorted(set(baseline) & set(system))
    if not shared:
        raise ValueError("no query was scored by both systems")
    diffs = np.array([system[q] - baseline[q] for q in shared], dtype=np.float64)
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(diffs), size=(samples, len(diffs)))
    means = diffs[draws].mean(axis=1)
    tail = (1 - level) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return Gain(float(diffs.mean()), float(low), float(high), len(diffs), level)
