"""The packaged all-MiniLM-L6-v2 against sentence-transformers, the reference implementation."""

import random

import numpy as np
import pytest

pytestmark = pytest.mark.slow

SUBJECTS = [
    "The committee",
    "A small dog",
    "Quantum computers",
    "My grandmother",
    "The market",
    "Elasticsearch",
    "The vaccine trial",
    "A red bicycle",
    "Das Orchester",
    "Le gouvernement",
]
VERBS = [
    "announced",
    "chased",
    "will transform",
    "baked",
    "collapsed after",
    "indexes",
    "reported results on",
    "was stolen near",
    "spielte",
    "a publié",
]
OBJECTS = [
    "a new budget.",
    "the mail carrier down the street.",
    "modern cryptography.",
    "an apple pie for the holidays.",
    "weeks of speculation.",
    "millions of documents.",
    "T-cell response in older adults.",
    "the train station.",
    "eine Symphonie.",
    "un décret.",
]


def varied_sentences(n: int = 200) -> list[str]:
    rng = random.Random(7)
    out = []
    for i in range(n):
        s = f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"
        if i % 10 == 0:  # long texts, cut at 256 tokens by both implementations
            s = " ".join([s] * rng.randint(30, 60))
        elif i % 7 == 0:
            s = s.upper() + " 中文 🙂 ½"
        out.append(s)
    return out


def test_matches_sentence_transformers(minilm_dir):
    """float32 against sentence-transformers' float32 (``auto`` may run bf16 on this CPU)."""
    from sentence_transformers import SentenceTransformer

    from es_semantic import Encoder

    sentences = varied_sentences()
    reference = SentenceTransformer(str(minilm_dir), device="cpu").encode(
        sentences, normalize_embeddings=True, batch_size=32
    )
    ours = Encoder(minilm_dir, precision="float32").encode_documents(sentences)
    assert ours.shape == (200, 384) == reference.shape
    assert float(np.abs(ours - reference).max()) <= 1e-5


def test_contract_read_from_packaged_folder(minilm):
    cfg = minilm.config
    assert (cfg.dim, cfg.pooling, cfg.normalize, cfg.max_length) == (384, "mean", True, 256)
    assert cfg.model_name == "sentence-transformers/all-MiniLM-L6-v2"


def test_paraphrase_beats_unrelated(minilm):
    q, para, other = minilm.encode_documents(
        [
            "How do I reset my password?",
            "Steps to change a forgotten login password",
            "The recipe needs two cups of flour",
        ]
    )
    assert float(q @ para) > float(q @ other) + 0.2
