"""A contract's similarity in the unit thresholds and pair scores use, and its conversions (pure).

The user's unit (``raw_similarity`` of a kNN ``_score``; what ``pairwise`` computes): cosine and
dot_product: the cosine (dot product of unit vectors), -1 to 1; l2_norm: Elasticsearch's score
``1 / (1 + d^2)``, in (0, 1]; max_inner_product: its score, ``1 / (1 - dot)`` for a negative dot
product and ``dot + 1`` otherwise, above 0. Higher is more similar in every unit.

kNN's ``similarity`` parameter is not the score but the raw similarity: the cosine, the dot
product, the largest l2 distance, the raw inner product; ``knn_threshold`` converts to it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

from es_semantic.errors import ConfigError

Matrix = npt.NDArray[np.float32]


def raw_similarity(score: float, similarity: str) -> float:
    """Elasticsearch's kNN ``_score`` back to the raw similarity of the two vectors."""
    if similarity in ("cosine", "dot_product"):
        return 2.0 * score - 1.0
    return score  # l2_norm and max_inner_product: the score is the documented unit


def knn_threshold(threshold: float, similarity: str) -> float:
    """kNN's ``similarity`` parameter for a ``threshold`` in the user's unit: the cosine or dot
    product as is; ``l2_norm``: the largest distance, ``sqrt(1/score - 1)``;
    ``max_inner_product``: the raw inner product, ``score - 1`` from a score of 1 up, else
    ``1 - 1/score``. A threshold outside the unit's range raises ConfigError."""
    if similarity == "l2_norm":
        if not 0.0 < threshold <= 1.0:
            raise ConfigError(
                f"threshold {threshold} is not an l2_norm score: use one in (0, 1], "
                "1 / (1 + d^2) for an l2 distance d"
            )
        return math.sqrt(1.0 / threshold - 1.0)
    if similarity == "max_inner_product":
        if not 0.0 < threshold < math.inf:
            raise ConfigError(
                f"threshold {threshold} is not a max_inner_product score: use one above 0 "
                "(dot + 1 for a dot product from 0 up, 1 / (1 - dot) below 0)"
            )
        return threshold - 1.0 if threshold >= 1.0 else 1.0 - 1.0 / threshold
    if not -1.0 <= threshold <= 1.0:
        raise ConfigError(f"threshold {threshold} is not a {similarity} similarity: use -1 to 1")
    return threshold


def unit_rows(matrix: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """Each row scaled to length 1, in its own dtype (an all-zero row stays zero)."""
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    result: npt.NDArray[Any] = (matrix / np.maximum(norms, 1e-12)).astype(matrix.dtype)
    return result


def pairwise(left: Matrix, right: Matrix, similarity: str) -> npt.NDArray[np.float64]:
    """Every left row against every right row, in the raw unit of ``similarity``."""
    a, b = left.astype(np.float64), right.astype(np.float64)
    if similarity == "cosine":
        a, b = unit_rows(a), unit_rows(b)
    dot: npt.NDArray[np.float64] = a @ b.T
    if similarity in ("cosine", "dot_product"):
        return dot
    if similarity == "l2_norm":
        squared = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * dot
        result: npt.NDArray[np.float64] = 1.0 / (1.0 + np.maximum(squared, 0.0))
        return result
    inner: npt.NDArray[np.float64] = np.where(dot < 0, 1.0 / (1.0 - dot), dot + 1.0)
    return inner  # max_inner_product
