"""The near-duplicate threshold in every similarity's unit: what is sent as kNN's `similarity`
and what is compared afterwards, checked against Elasticsearch's documented formulas (written
out here, independently of es_semantic.schema.similarity)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from es_semantic.config import EncoderConfig
from es_semantic.corpus.pairs import probe_body
from es_semantic.elastic.calls import Call
from es_semantic.errors import ConfigError
from es_semantic.indexing.dedupe import probe_steps
from es_semantic.schema.contract import IndexContract
from es_semantic.schema.similarity import knn_threshold, pairwise, raw_similarity

SIMILARITIES = ("cosine", "dot_product", "l2_norm", "max_inner_product")


def es_score(q: np.ndarray, v: np.ndarray, similarity: str) -> float:
    """The kNN `_score` as the dense_vector docs define it for float vectors."""
    dot = float(q @ v)
    if similarity == "cosine":
        return (1 + dot / (np.linalg.norm(q) * np.linalg.norm(v))) / 2
    if similarity == "dot_product":
        return (1 + dot) / 2
    if similarity == "l2_norm":
        return 1 / (1 + float(np.sum((q - v) ** 2)))
    return 1 / (1 - dot) if dot < 0 else dot + 1  # max_inner_product


def knn_keeps(parameter: float, q: np.ndarray, v: np.ndarray, similarity: str) -> bool:
    """What the kNN `similarity` parameter keeps: it is in the raw similarity's unit (cosine,
    dot product, l2 *distance* (at most), raw inner product), not the `_score`."""
    dot = float(q @ v)
    if similarity == "cosine":
        return dot / (np.linalg.norm(q) * np.linalg.norm(v)) >= parameter
    if similarity == "l2_norm":
        return float(np.linalg.norm(q - v)) <= parameter
    return dot >= parameter  # dot_product and max_inner_product


def vectors(similarity: str, rng: np.random.Generator, n: int = 2) -> np.ndarray:
    rows = rng.normal(size=(n, 8)).astype(np.float32)
    if similarity == "dot_product":  # documented to need unit vectors
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    elif similarity == "max_inner_product":
        rows *= rng.uniform(0.1, 1.5)  # dot products on both sides of 0
    return rows


def user_threshold(similarity: str, rng: np.random.Generator) -> float:
    if similarity in ("cosine", "dot_product"):
        return float(rng.uniform(-0.9, 0.99))
    return float(rng.uniform(0.02, 3.0 if similarity == "max_inner_product" else 0.99))


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_the_knn_cut_off_keeps_exactly_the_pairs_at_or_above_the_threshold(similarity):
    """Property over 400 random vector pairs and thresholds per similarity: kNN's cut-off
    (the converted threshold) keeps a pair iff its score in the user's unit (the `_score`
    read back, and the exact in-memory comparison) is at or above the threshold."""
    rng = np.random.default_rng(7)
    checked = 0
    for _ in range(400):
        q, v = vectors(similarity, rng)
        threshold = user_threshold(similarity, rng)
        mine = raw_similarity(es_score(q, v, similarity), similarity)
        exact = float(pairwise(q[None, :], v[None, :], similarity)[0, 0])
        assert exact == pytest.approx(mine, rel=1e-4, abs=1e-5)
        if abs(mine - threshold) < 1e-4:
            continue  # too close to call in float32
        sent = knn_threshold(threshold, similarity)
        assert knn_keeps(sent, q, v, similarity) == (mine >= threshold), (threshold, sent, mine)
        checked += 1
    assert checked > 350


@pytest.mark.parametrize(
    ("similarity", "threshold", "sent"),
    [
        ("cosine", 0.9, 0.9),
        ("dot_product", 0.8, 0.8),
        ("l2_norm", 0.5, 1.0),  # 1 / (1 + d^2) = 0.5 -> d = 1
        ("l2_norm", 0.2, 2.0),
        ("max_inner_product", 1.9, 0.9),  # score dot + 1 -> dot 0.9
        ("max_inner_product", 1.0, 0.0),
        ("max_inner_product", 0.5, -1.0),  # score 1 / (1 - dot) -> dot -1
        ("max_inner_product", 0.25, -3.0),
    ],
)
def test_each_similarity_converts_to_the_documented_knn_unit(similarity, threshold, sent):
    assert knn_threshold(threshold, similarity) == pytest.approx(sent)


@pytest.mark.parametrize("similarity", SIMILARITIES)
def test_threshold_round_trips_through_the_knn_unit(similarity):
    """threshold -> kNN parameter -> the score a vector exactly at that parameter gets ->
    back to the user's unit: the same threshold."""
    rng = np.random.default_rng(11)
    for _ in range(200):
        threshold = user_threshold(similarity, rng)
        sent = knn_threshold(threshold, similarity)
        if similarity in ("cosine", "dot_product"):
            score = (1 + sent) / 2
        elif similarity == "l2_norm":
            score = 1 / (1 + sent * sent)
        else:
            score = 1 / (1 - sent) if sent < 0 else sent + 1
        assert raw_similarity(score, similarity) == pytest.approx(threshold, abs=1e-9)


@pytest.mark.parametrize(
    ("similarity", "threshold"),
    [("l2_norm", 0.0), ("l2_norm", 1.5), ("max_inner_product", 0.0),
     ("max_inner_product", -0.5), ("cosine", 1.5), ("dot_product", -2.0),
     ("cosine", math.nan)],
)  # fmt: skip
def test_a_threshold_outside_the_unit_is_refused_naming_it(similarity, threshold):
    with pytest.raises(ConfigError, match=similarity):
        knn_threshold(threshold, similarity)


ENC = EncoderConfig("m", "/m", "fp", "mean", False, 256, "", "", 3)


@pytest.mark.parametrize(
    ("similarity", "threshold", "sent"),
    [("max_inner_product", 2.5, 1.5), ("max_inner_product", 0.5, -1.0), ("l2_norm", 0.5, 1.0),
     ("cosine", 1.5, None)],
)  # fmt: skip
def test_both_probes_send_the_converted_threshold(similarity, threshold, sent):
    """The duplicates scan and the dedupe-at-ingest probe send the kNN-unit value (a cosine
    above 1 is refused before anything is sent)."""
    contract = IndexContract.from_encoder(ENC, chunking="none", similarity=similarity)
    if sent is None:
        with pytest.raises(ConfigError):
            probe_body([1.0, 0, 0], contract, exclude_id="d", top_k=3, threshold=threshold,
                       filters=[], text_fields=("text",))  # fmt: skip
        return
    body = probe_body([1.0, 0, 0], contract, exclude_id="d", top_k=3, threshold=threshold,
                      filters=[], text_fields=("text",))  # fmt: skip
    assert body["knn"]["similarity"] == pytest.approx(sent)
    steps = probe_steps("i", contract, [("d", np.ones((1, 3), dtype=np.float32))], threshold)
    call = next(steps)
    assert isinstance(call, Call)
    (knn,) = [line["knn"] for line in call.kwargs["searches"] if "knn" in line]
    assert knn["similarity"] == pytest.approx(sent)
