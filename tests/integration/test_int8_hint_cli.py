"""`index` and `serve` say once, on stderr, where this machine's cache holds an int8 build of the
model that met the accuracy goal on this CPU (#35); nothing when the record misses it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from es_semantic.cli import cli
from es_semantic.encoding.backend import BackendChoice
from es_semantic.encoding.device import cpu_info
from es_semantic.encoding.encoder import describe_encoder
from es_semantic.encoding.export import export_slot
from es_semantic.encoding.heads import sentence_head

HINT = "hint: an int8 build of"


def int8_record(cache: Path, model: Path, mean_cosine: float) -> None:
    """An OpenVINO int8-static build of ``model`` in ``cache`` as the build leaves it."""
    config = describe_encoder(model, backend="torch", precision="float32")
    head = sentence_head(config.pooling, config.normalize).key
    slot = export_slot(cache, config.fingerprint, head, BackendChoice("openvino", "int8-static"))
    slot.folder.mkdir(parents=True)
    slot.model_file.write_text("<net/>")
    accuracy = {"mean_cosine": mean_cosine, "min_cosine": 0.9943, "texts": 60}
    quality = {"cpu_kind": cpu_info().kind, "accuracy": accuracy}
    (slot.folder / "quality.json").write_text(json.dumps(quality))


@pytest.fixture
def cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("ES_SEMANTIC_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)  # the dead-letter file lands here
    return tmp_path / "cache"


@pytest.mark.parametrize(("mean_cosine", "said"), [(0.9970, 1), (0.9940, 0)])
def test_index_says_it_once_where_the_record_holds(
    es_server: Any, index_name: str, tiny_st_dir: Path, cache: Path, mean_cosine: float,
    said: int,
) -> None:  # fmt: skip
    int8_record(cache, tiny_st_dir, mean_cosine)
    args = ["index", index_name, "-", "--model", str(tiny_st_dir), "--backend", "torch",
            "--es-url", es_server.config.url]  # fmt: skip
    docs = "".join(json.dumps({"id": str(i), "text": f"note {i}"}) + "\n" for i in range(3))
    result = CliRunner().invoke(cli, args, input=docs, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert result.stderr.count(HINT) == said and HINT not in result.stdout
    quiet = CliRunner().invoke(cli, [*args, "--quiet"], input=docs, catch_exceptions=False)
    assert quiet.exit_code == 0 and HINT not in quiet.output


@pytest.mark.parametrize("workers", ["1", "2"])
def test_serve_says_it_once_not_once_per_worker(
    es_server: Any, tiny_st_dir: Path, cache: Path, monkeypatch: pytest.MonkeyPatch,
    workers: str,
) -> None:  # fmt: skip
    uvicorn = pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    ran: list[object] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: ran.append(app))
    int8_record(cache, tiny_st_dir, 0.9970)
    args = ["serve", "--model", str(tiny_st_dir), "--backend", "torch", "--workers", workers,
            "--es-url", es_server.config.url]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert len(ran) == 1 and result.stderr.count(HINT) == 1
    already = CliRunner().invoke(cli, [*args, "--quantize", "int8"], catch_exceptions=False)
    assert already.exit_code == 0 and HINT not in already.output
