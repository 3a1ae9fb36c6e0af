import numpy as np
import pytest
import torch

from es_semantic import CrossEncoder
from es_semantic.errors import ConfigError
from tests.tiny_models import build_tiny_cross_encoder

PASSAGES = ["the cat", "a dog in the city " * 5, "search engine", "music and film and books " * 3]


def _manual_logits(folder, query, passages):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    with torch.no_grad():
        return np.stack(
            [model(**tok([query], [p], return_tensors="pt")).logits[0].numpy() for p in passages]
        )


def test_one_label_scores_match_manual(tiny_cross_encoder_dir):
    ce = CrossEncoder(tiny_cross_encoder_dir)
    got = ce.score("what is a cat", PASSAGES)
    expected = _manual_logits(tiny_cross_encoder_dir, "what is a cat", PASSAGES)[:, 0]
    assert got.dtype == np.float32 and got.shape == (4,)
    assert np.abs(got - expected).max() <= 1e-5


def test_sigmoid_and_batch_invariance(tiny_cross_encoder_dir):
    raw = CrossEncoder(tiny_cross_encoder_dir, batch_size=1).score("cat", PASSAGES)
    sig = CrossEncoder(tiny_cross_encoder_dir, activation="sigmoid").score("cat", PASSAGES)
    assert np.abs(sig - 1 / (1 + np.exp(-raw))).max() <= 1e-5


def test_two_label_head(tmp_path):
    folder = build_tiny_cross_encoder(tmp_path / "two", num_labels=2)
    logits = _manual_logits(folder, "cat", PASSAGES)
    raw = CrossEncoder(folder).score("cat", PASSAGES)
    assert np.abs(raw - (logits[:, 1] - logits[:, 0])).max() <= 1e-5
    prob = CrossEncoder(folder, activation="sigmoid").score("cat", PASSAGES)
    expected = np.exp(logits[:, 1]) / np.exp(logits).sum(axis=1)
    assert np.abs(prob - expected).max() <= 1e-5


def test_score_many_equals_score(tiny_cross_encoder_dir):
    ce = CrossEncoder(tiny_cross_encoder_dir)
    many = ce.score_many(["cat", "dog"], [PASSAGES[:2], PASSAGES])
    assert np.abs(many[0] - ce.score("cat", PASSAGES[:2])).max() <= 1e-5
    assert np.abs(many[1] - ce.score("dog", PASSAGES)).max() <= 1e-5
    assert ce.score("cat", []).shape == (0,)


def test_bad_activation(tiny_cross_encoder_dir):
    with pytest.raises(ConfigError, match="activation='softmax'"):
        CrossEncoder(tiny_cross_encoder_dir, activation="softmax")
