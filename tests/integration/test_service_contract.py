"""The service searches through the library's steps: an alias that `migrate` moves to an index
built with another model of the same dims is noticed (as ``Searcher`` notices it), never
answered with hits computed from the old model's vector."""

from __future__ import annotations

import pytest

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.errors import IndexContractError
from tests.integration.test_service import KEY, call, running
from tests.tiny_models import build_tiny_bert, make_sentence_transformers

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
from es_semantic.service.app import ServiceConfig, create_app

DOCS = ["search engine vector index", "banana cherry river", "python code test",
        "cat dog bird fish", "music film book paper"]  # fmt: skip


@pytest.fixture(scope="module")
def first(tiny_st_dir):
    return Encoder(tiny_st_dir)


@pytest.fixture(scope="module")
def second(tmp_path_factory):
    """The same architecture and dims, other weights (another seed): another model."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny-st-seed1"), seed=1)
    make_sentence_transformers(folder, prompts={"query": "query: ", "passage": "passage: "})
    return Encoder(folder)


def test_a_moved_alias_is_refused_not_answered_with_the_old_model(
    es, es_server, index_name, first, second
):
    assert first.dim == second.dim and first.config.fingerprint != second.config.fingerprint
    old, new = f"{index_name}-a", f"{index_name}-b"
    docs = [{"id": str(i), "text": t} for i, t in enumerate(DOCS)]
    Indexer(es, old, first, chunking="none").index(docs)
    Indexer(es, new, second, chunking="none").index(docs)
    es.indices.put_alias(index=old, name=index_name)
    config = ServiceConfig(indices=(index_name,), api_keys=(KEY,))
    app = create_app(first, config=config, es_config=es_server.config)
    body = {"query": "vector search", "mode": "knn", "k": 3}
    with running(app) as url:
        status, before, _ = call(f"{url}/indices/{index_name}/search", body, KEY)
        assert status == 200 and before["hits"], before  # the contract of `old` is now cached
        es.indices.update_aliases(actions=[
            {"remove": {"index": old, "alias": index_name}},
            {"add": {"index": new, "alias": index_name}},
        ])  # fmt: skip
        status, after, _ = call(f"{url}/indices/{index_name}/search", body, KEY)
    # the library refuses: the encoder in use is not the one the index was built with
    with pytest.raises(IndexContractError, match="encoder"):
        Searcher(es, index_name, first).search("vector search", mode="knn", k=3)
    assert status == 409, f"the service answered {status} after the alias moved: {after}"
    assert second.config.fingerprint in after["error"] and "encoder" in after["error"]
