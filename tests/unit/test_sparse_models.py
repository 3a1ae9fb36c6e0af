"""Finding an index's sparse model from its contract (#28 review): never the network, a
not-found message that tells a client nothing about this machine's folders, the loaded models
memoised on what the contract says (fingerprint included), loads outside the shared lock."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from es_semantic.encoding import sparse_models
from es_semantic.encoding.sparse import describe_sparse
from es_semantic.errors import ConfigError, IndexContractError
from es_semantic.schema.contract import IndexContract, SparseLeg
from tests.sparse_models import build_tiny_mlm, splade_tiny_dir


def _leg(**fields: Any) -> SparseLeg:
    values: dict[str, Any] = {"model_name": "splade-tiny", "model_fingerprint": "0" * 16,
                              "max_length": 128, **fields}  # fmt: skip
    return SparseLeg(**values)


@pytest.fixture(autouse=True)
def _empty_cache():
    sparse_models._loaded.clear()
    yield
    sparse_models._loaded.clear()


def test_a_hub_id_in_a_contract_never_reaches_the_network(monkeypatch):
    """A leg named ``org/model`` (what any writer of the index's _meta may put there) is looked
    up in the local cache only: snapshot_download with the network allowed is never called."""
    huggingface_hub = pytest.importorskip("huggingface_hub")
    calls: list[dict[str, Any]] = []

    def snapshot_download(repo_id: str, **options: Any) -> str:
        calls.append(options)
        raise OSError(f"{repo_id} is not in the cache")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    with pytest.raises(ConfigError, match="--sparse-model"):
        sparse_models.locate(_leg(model_name="someone/huge-model"), "idx")
    assert [c for c in calls if not c.get("local_files_only")] == []


def test_not_found_names_no_folder_nor_what_it_holds(tmp_path, caplog):
    """A folder that holds another model: the message (a service's 400 body) names the index,
    the recorded model and --sparse-model only; the folder and its fingerprint go to the log."""
    folder = build_tiny_mlm(tmp_path / "other-model")
    leg = _leg(model_path=str(folder), model_package="cognition/model")
    actual = describe_sparse(folder).fingerprint
    with (caplog.at_level("INFO", logger="es_semantic"),
          pytest.raises(ConfigError, match="--sparse-model") as caught):  # fmt: skip
        sparse_models.locate(leg, "idx")
    message = str(caught.value)
    assert "'idx'" in message and "splade-tiny" in message and "\n" not in message
    assert actual not in message and str(folder) not in message and "cognition" not in message
    assert any(actual in r.getMessage() for r in caplog.records)  # details: the server's log


def test_a_loaded_model_is_found_without_reading_its_folder_again(monkeypatch):
    """The second query of an index gets the loaded model without locate (configs read,
    2 MiB of weights hashed): memoised on the leg's folder, package, name, fingerprint, mode."""
    spec = describe_sparse(splade_tiny_dir())
    leg = _leg(model_fingerprint=spec.fingerprint, model_path=spec.folder)
    located: list[str] = []
    real = sparse_models.locate

    def counting(leg: SparseLeg, index: str) -> str:
        located.append(index)
        return real(leg, index)

    monkeypatch.setattr(sparse_models, "locate", counting)
    first = sparse_models.for_leg(leg, "idx", device="cpu")
    assert sparse_models.for_leg(leg, "idx", device="cpu") is first
    assert located == ["idx"]
    other = _leg(model_fingerprint="f" * 16, model_path=spec.folder)  # same folder, new weights
    with pytest.raises(ConfigError):
        sparse_models.for_leg(other, "idx", device="cpu")  # not the loaded one: looked up again
    assert located == ["idx", "idx"]


def test_a_load_does_not_hold_up_another_models_cache_hit(monkeypatch):
    """While one model loads (seconds), a model already loaded is answered at once."""
    loading, release = threading.Event(), threading.Event()

    class SlowEncoder:
        def __init__(self, folder: str, **options: Any) -> None:
            if folder == "slow":
                loading.set()
                release.wait(5)
            self.folder, self.options = folder, options

    monkeypatch.setattr("es_semantic.encoding.sparse.SparseEncoder", SlowEncoder)
    monkeypatch.setattr(sparse_models, "locate", lambda leg, index: leg.model_path)
    fast, slow = _leg(model_path="fast"), _leg(model_path="slow")
    sparse_models.for_leg(fast, "a")
    worker = threading.Thread(target=sparse_models.for_leg, args=(slow, "b"))
    worker.start()
    try:
        assert loading.wait(5)
        started = time.perf_counter()
        assert sparse_models.for_leg(fast, "a").folder == "fast"
        assert time.perf_counter() - started < 1
    finally:
        release.set()
        worker.join(5)
    assert sparse_models.for_leg(slow, "b").options["device"] is None


@pytest.mark.parametrize("key", ["model_path", "model_package"])
def test_a_recorded_folder_that_is_not_text_is_the_contracts_own_error(key):
    meta = {"es_semantic": {
        "model_name": "m", "model_path": "/m", "model_fingerprint": "f" * 16, "pooling": "mean",
        "normalize": True, "max_length": 128, "query_prefix": "", "document_prefix": "",
        "dims": 8, "sparse": {**_leg().__dict__, key: 5},
    }}  # fmt: skip
    with pytest.raises(IndexContractError, match="'idx'") as caught:
        IndexContract.from_meta(meta, "idx")
    assert key in str(caught.value) and "\n" not in str(caught.value)


def test_queries_waiting_for_the_same_model_load_it_once(monkeypatch):
    built: list[str] = []

    class CountedEncoder:
        def __init__(self, folder: str, **options: Any) -> None:
            time.sleep(0.2)
            built.append(folder)

    monkeypatch.setattr("es_semantic.encoding.sparse.SparseEncoder", CountedEncoder)
    monkeypatch.setattr(sparse_models, "locate", lambda leg, index: leg.model_path)
    leg = _leg(model_path="one")
    workers = [threading.Thread(target=sparse_models.for_leg, args=(leg, "a")) for _ in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(5)
    assert built == ["one"] and not sparse_models._loading
