"""Fixtures shared by unit and integration tests: a hermetic environment, tiny model folders
and the packaged model."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.hermetic import package_variables
from tests.tiny_models import build_tiny_bert, build_tiny_cross_encoder, make_sentence_transformers

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
CACHES = {".pytest_cache", "__pycache__", ".mypy_cache", ".ruff_cache", ".hypothesis"}


@pytest.fixture(scope="session", autouse=True)
def shell_environment() -> Iterator[dict[str, str]]:
    """The package's variables as the shell set them, taken out of the environment for the
    whole session (so module and session fixtures see the packaged defaults too). Only the
    session's server choice reads them (tests/integration/conftest.py: ``es_server``)."""
    captured = {name: os.environ[name] for name in package_variables(os.environ)}
    with pytest.MonkeyPatch.context() as patch:
        for name in captured:
            patch.delenv(name)
        yield captured


@pytest.fixture(scope="session", autouse=True)
def working_directory_left_as_found() -> Iterator[None]:
    """Fail the run, naming them, when tests leave files in the directory pytest runs from
    (a command's default output, e.g. ``INDEX.dead.jsonl``, belongs in ``tmp_path``)."""
    cwd = Path.cwd()
    before = {p.name for p in cwd.iterdir()}
    yield
    left = sorted({p.name for p in cwd.iterdir()} - before - CACHES)
    if left:
        pytest.fail(f"the tests left files in {cwd}: {', '.join(left)}", pytrace=False)


@pytest.fixture(autouse=True)
def hermetic_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every test starts without any variable es-semantic reads, whatever the shell or an
    earlier test left: a test that needs one sets it itself (monkeypatch.setenv)."""
    for name in package_variables(os.environ):
        monkeypatch.delenv(name)


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
def tiny(tiny_st_dir: Path) -> Encoder:
    """The tiny sentence-transformers model, loaded once (tests must not change it)."""
    from es_semantic.encoding.encoder import Encoder

    return Encoder(tiny_st_dir)


@pytest.fixture(scope="session")
def minilm(minilm_dir: Path) -> Encoder:
    """The packaged all-MiniLM-L6-v2, loaded once (tests must not change it)."""
    from es_semantic.encoding.encoder import Encoder

    return Encoder(minilm_dir)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    """The packaged all-MiniLM-L6-v2 (the ``models`` extra)."""
    from es_semantic.encoding.model_folder import default_model_path

    return default_model_path()
