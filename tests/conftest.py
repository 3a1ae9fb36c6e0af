"""Fixtures shared by unit and integration tests: tiny model folders and the packaged model."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.tiny_models import build_tiny_bert, build_tiny_cross_encoder, make_sentence_transformers

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plain BERT folder (no sentence-transformers files)."""
    return build_tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_st_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sentence-transformers folder: mean pooling, Normalize, an e5-style query prompt."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny-st"))
    return make_sentence_transformers(folder, prompts={"query": "query: ", "passage": "passage: "})


@pytest.fixture(scope="session")
def tiny_cross_encoder_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_cross_encoder(tmp_path_factory.mktemp("tiny-ce"))


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 (the ``models`` extra)."""
    from es_semantic.encoding.model_folder import default_model_path

    return default_model_path()
