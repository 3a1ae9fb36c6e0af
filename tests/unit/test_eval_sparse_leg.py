"""eval's sparse leg: a mode of its own, and fused with the others on the client."""

from __future__ import annotations

from typing import Any

import pytest

from es_semantic.errors import ConfigError
from es_semantic.evaluation.runner import LegRuns, build_modes, check_modes
from es_semantic.search.fusion import LegHit

LEG_MS = 1000.0  # each leg's request; the fusion's own measured time adds far less


def _legs(with_sparse: bool) -> LegRuns:
    runs = LegRuns()
    lists = {"keyword": ["a", "b"], "knn": ["b", "c"]}
    if with_sparse:
        lists["sparse"] = ["d", "a"]
    for leg, ids in lists.items():
        runs.hits[leg] = {"q1": [LegHit(d, 1.0 / (i + 1)) for i, d in enumerate(ids)]}
        runs.ms[leg] = {"q1": LEG_MS}
    return runs


def test_sparse_is_a_mode() -> None:
    assert check_modes(["sparse", "sparse+rerank"]) == ["sparse", "sparse+rerank"]


@pytest.mark.parametrize("mode", ["hybrid", "weighted", "adaptive"])
def test_fused_modes_fuse_the_sparse_leg(mode: str) -> None:
    searcher: Any = None  # only server-rrf sends requests
    runs = build_modes(["sparse", mode], _legs(True), {"q1": "x"}, searcher=searcher)
    assert runs["sparse"].ranked["q1"] == ["d", "a"]
    assert "d" in runs[mode].ranked["q1"]  # only the sparse leg found it
    assert runs[mode].ms["q1"] >= 3 * LEG_MS  # three legs' requests


def test_sparse_mode_without_the_sparse_leg_is_refused() -> None:
    searcher: Any = None
    with pytest.raises(ConfigError, match="--sparse-model"):
        build_modes(["sparse"], _legs(False), {"q1": "x"}, searcher=searcher)


@pytest.mark.parametrize("method", ["hybrid", "weighted", "adaptive"])
def test_a_fused_mode_may_name_its_legs(method: str) -> None:
    """Two-leg hybrid beside three-leg hybrid from the same leg runs: ``MODE:LEG+LEG``."""
    searcher: Any = None
    two, three = f"{method}:keyword+knn", f"{method}:keyword+knn+sparse"
    runs = build_modes([method, two, three], _legs(True), {"q1": "x"}, searcher=searcher)
    assert "d" not in runs[two].ranked["q1"]  # the sparse leg's document is not fused in
    assert set(runs[two].ranked["q1"]) == {"a", "b", "c"}
    assert runs[three].ranked["q1"] == runs[method].ranked["q1"]  # every leg, named
    assert runs[two].ms["q1"] < 3 * LEG_MS <= runs[three].ms["q1"]  # two legs' requests
    plain = build_modes([method], _legs(False), {"q1": "x"}, searcher=searcher)
    assert runs[two].ranked["q1"] == plain[method].ranked["q1"]


def test_named_legs_are_checked() -> None:
    assert check_modes(["rrf:knn+sparse+rerank"]) == ["rrf:knn+sparse+rerank"]
    for bad in ("keyword:knn+sparse", "hybrid:knn", "hybrid:knn+knn", "hybrid:knn+bm25"):
        with pytest.raises(ConfigError, match=r"keyword, knn, sparse|not one of"):
            check_modes([bad])
    searcher: Any = None
    with pytest.raises(ConfigError, match="--sparse-model"):
        build_modes(["hybrid:keyword+sparse"], _legs(False), {"q1": "x"}, searcher=searcher)
