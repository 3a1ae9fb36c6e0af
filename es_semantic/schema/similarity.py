"""A contract's similarity in its raw unit, as kNN's ``similarity`` threshold takes it (pure).

cosine and dot_product: the cosine (dot product of unit vectors), -1 to 1; l2_norm:
Elasticsearch's score ``1 / (1 + d^2)``; max_inner_product: its score.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import numpy.typing as npt

Matrix = npt.NDArray[np.float32]


def raw_similarity(score: float, similarity: str) -> float:
    """Elasticsearch's kNN ``_score`` back to the raw similarity of the two vectors."""
    if similarity in ("cosine", "dot_product"):
        return 2.0 * score - 1.0
    return score  # l2_norm and max_inner_product: the score is the documented unit


def knn_threshold(threshold: float, similarity: str) -> float:
    """The kNN ``similarity`` parameter for ``threshold``: raw cosine/dot product as is; for
    ``l2_norm`` the largest distance, ``sqrt(1/score - 1)``."""
    if similarity == "l2_norm":
        if not 0.0 < threshold <= 1.0:
            raise ValueError("an l2_norm threshold is a score in (0, 1]: 1 / (1 + d^2)")
        return math.sqrt(1.0 / threshold - 1.0)
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
