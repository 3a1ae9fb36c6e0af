"""Adaptive fusion: per-query leg weights from each leg's own score distribution."""

from __future__ import annotations

import pytest

from es_semantic.search.fusion import LegHit, adaptive, adaptive_weights, leg_confidence

PEAKED = [9.0, 3.0, 2.9, 2.8, 2.7, 2.6, 2.5, 2.4, 2.3, 2.2, 2.1, 2.0]
FLAT = [0.80, 0.799, 0.798, 0.797, 0.796, 0.795, 0.794, 0.793, 0.792, 0.791, 0.790, 0.50]


def hits(prefix, scores):
    return [LegHit(f"{prefix}{i}", s) for i, s in enumerate(scores)]


def test_confidence_is_scale_free_and_zero_for_flat_lists():
    assert leg_confidence(PEAKED) == pytest.approx(leg_confidence([s * 100 for s in PEAKED]))
    assert leg_confidence([1.0] * 5) == 0.0 and leg_confidence([2.0, 1.0]) == 0.0
    assert leg_confidence(PEAKED) > 10 * leg_confidence(FLAT)


def test_a_leg_that_cannot_tell_its_hits_apart_gets_little_weight():
    legs = {"keyword": hits("k", PEAKED), "knn": hits("v", FLAT)}
    weights = adaptive_weights(legs)
    assert weights["keyword"] > 0.95 and sum(weights.values()) == pytest.approx(1.0)
    fused = [f.id for f in adaptive(legs)]
    assert fused[0] == "k0"


def test_equal_weights_when_no_leg_shows_confidence():
    legs = {"keyword": hits("k", [1.0] * 4), "knn": hits("v", [0.5] * 4)}
    assert adaptive_weights(legs) == {"keyword": 0.5, "knn": 0.5}
    assert {f.id for f in adaptive(legs)} == {f"k{i}" for i in range(4)} | {
        f"v{i}" for i in range(4)
    }


def test_any_number_of_legs_by_name():
    legs = {"keyword": hits("k", FLAT), "knn": hits("v", FLAT), "sparse": hits("s", PEAKED)}
    weights = adaptive_weights(legs)
    assert (
        set(weights) == {"keyword", "knn", "sparse"} and max(weights, key=weights.get) == "sparse"
    )
    assert adaptive(legs)[0].id == "s0"
