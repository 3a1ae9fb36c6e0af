"""SparseEncoder against sentence-transformers' SparseEncoder on the same folders."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from es_semantic.encoding.sparse import SparseEncoder
from es_semantic.errors import ConfigError, InputError
from tests.sparse_models import (
    build_inference_free,
    build_tiny_mlm,
    make_sparse_st,
    splade_tiny_dir,
)

TEXTS = [
    "the cat and the dog",
    "what is a sparse vector index for elastic search?",
    "python java rust go code test " * 5,
    "a",
    "river mountain city . music ; film",
]
ENGLISH = [
    "What is the capital of France?",
    "Paris is the capital and most populous city of France.",
    "BM25 ranks documents by term frequency and inverse document frequency.",
    "Learned sparse retrieval expands documents with related vocabulary terms.",
]


def _reference(folder: Path, texts: list[str], kind: str) -> np.ndarray:
    st = pytest.importorskip("sentence_transformers")
    model = st.SparseEncoder(str(folder), device="cpu")
    encode = model.encode_query if kind == "query" else model.encode_document
    return encode(texts, convert_to_tensor=True, batch_size=2).to_dense().cpu().numpy()


def _dense(encoder: SparseEncoder, vectors: list[dict[str, float]]) -> np.ndarray:
    out = np.zeros((len(vectors), len(encoder.vocabulary)), dtype=np.float32)
    index = {token: i for i, token in enumerate(encoder.vocabulary)}
    for row, vector in enumerate(vectors):
        for token, weight in vector.items():
            out[row, index[token]] = weight
    return out


@pytest.fixture(scope="module")
def mlm_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_mlm(tmp_path_factory.mktemp("tiny-mlm"))


def test_plain_mlm_folder_matches_sentence_transformers(mlm_dir: Path) -> None:
    encoder = SparseEncoder(mlm_dir, batch_size=3)
    ours = _dense(encoder, encoder.encode_documents(TEXTS))
    assert (ours > 0).sum() > len(TEXTS)  # not empty vectors
    np.testing.assert_allclose(ours, _reference(mlm_dir, TEXTS, "document"), atol=1e-5)
    assert all(w > 0 for v in encoder.encode_documents(TEXTS) for w in v.values())


@pytest.mark.parametrize(("pooling", "activation"), [("sum", "relu"), ("max", "log1p_relu")])
def test_sentence_transformers_layout_matches(
    tmp_path: Path, pooling: str, activation: str
) -> None:
    folder = make_sparse_st(build_tiny_mlm(tmp_path / "m", seed=3), pooling=pooling,
                            activation=activation)  # fmt: skip
    encoder = SparseEncoder(folder)
    assert (encoder.spec.pooling, encoder.spec.activation) == (pooling, activation)
    ours = _dense(encoder, encoder.encode_documents(TEXTS))
    np.testing.assert_allclose(ours, _reference(folder, TEXTS, "document"), atol=1e-5)


def test_inference_free_router_folder_matches(tmp_path: Path, mlm_dir: Path) -> None:
    folder = build_inference_free(tmp_path / "ifree", mlm_dir)
    encoder = SparseEncoder(folder)
    assert encoder.spec.query_mode == "idf"
    queries = _dense(encoder, encoder.encode_queries(TEXTS))
    np.testing.assert_allclose(queries, _reference(folder, TEXTS, "query"), atol=1e-5)
    documents = _dense(encoder, encoder.encode_documents(TEXTS))
    np.testing.assert_allclose(documents, _reference(folder, TEXTS, "document"), atol=1e-5)
    calls = encoder.calls
    encoder.encode_queries(["the cat"])
    assert encoder.calls == calls  # inference-free: no forward pass for a query


def test_tokens_query_mode_is_each_token_once(mlm_dir: Path) -> None:
    encoder = SparseEncoder(mlm_dir, query_mode="tokens")
    assert encoder.encode_queries(["the cat the dog"]) == [{"the": 1.0, "cat": 1.0, "dog": 1.0}]
    with pytest.raises(ConfigError, match="idf"):
        SparseEncoder(mlm_dir, query_mode="idf")


def test_max_active_dims_keeps_the_largest(mlm_dir: Path) -> None:
    full = SparseEncoder(mlm_dir).encode_documents(TEXTS[:2])
    pruned = SparseEncoder(mlm_dir, max_active_dims=5).encode_documents(TEXTS[:2])
    for whole, kept in zip(full, pruned, strict=True):
        assert len(kept) == 5
        assert sorted(kept.values()) == sorted(whole.values())[-5:]


def test_bad_input(mlm_dir: Path) -> None:
    encoder = SparseEncoder(mlm_dir)
    with pytest.raises(InputError, match="list of texts"):
        encoder.encode_documents("one string")
    assert encoder.encode_documents([]) == []


def test_splade_tiny_matches_sentence_transformers() -> None:
    folder = splade_tiny_dir()
    encoder = SparseEncoder(folder)
    ours = _dense(encoder, encoder.encode_documents(ENGLISH))
    np.testing.assert_allclose(ours, _reference(folder, ENGLISH, "document"), atol=1e-5)
    queries = _dense(encoder, encoder.encode_queries(ENGLISH[:1]))
    np.testing.assert_allclose(queries, _reference(folder, ENGLISH[:1], "query"), atol=1e-5)


def test_splade_tiny_learned_expansion() -> None:
    """A real learning signal: the query's top terms are relevant and the matching passage
    scores highest by dot product."""
    encoder = SparseEncoder(splade_tiny_dir())
    query = encoder.encode_queries(["capital of france"])[0]
    docs = encoder.encode_documents(ENGLISH[1:])
    scores = [sum(w * d.get(t, 0.0) for t, w in query.items()) for d in docs]
    assert int(np.argmax(scores)) == 0
    assert "france" in sorted(query, key=query.__getitem__)[-5:]
