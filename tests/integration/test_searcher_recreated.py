"""A long-lived searcher (the service's, MCP's, an application's) reads the index contract
again once it is older than ``contract_ttl_s``: an index deleted and built again under the same
name with another model of the same dims is refused, never answered with the old model's
query vectors (hits from the same index name cannot tell the two apart)."""

from __future__ import annotations

import pytest

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.errors import IndexContractError
from tests.tiny_models import build_tiny_bert, make_sentence_transformers

DOCS = ["search engine vector index", "banana cherry river", "python code test",
        "cat dog bird fish", "music film book paper"]  # fmt: skip


@pytest.fixture(scope="module")
def second(tmp_path_factory: pytest.TempPathFactory) -> Encoder:
    """The same architecture and dims as ``tiny``, other weights: another model."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny-st-seed1"), seed=1)
    make_sentence_transformers(folder, prompts={"query": "query: ", "passage": "passage: "})
    return Encoder(folder)


def test_an_index_built_again_with_another_model_is_refused(es, index_name, tiny, second):
    assert tiny.dim == second.dim and tiny.config.fingerprint != second.config.fingerprint
    docs = [{"id": str(i), "text": t} for i, t in enumerate(DOCS)]
    Indexer(es, index_name, tiny, chunking="none").index(docs)
    searcher = Searcher(es, index_name, tiny)
    assert searcher.search("vector search", mode="knn", k=3).hits  # the contract is cached
    es.indices.delete(index=index_name)
    Indexer(es, index_name, second, chunking="none").index(docs)
    assert searcher.search("vector search", mode="knn", k=3).hits  # within the ttl: cached
    searcher.contract_ttl_s = 0.0  # as if the ttl had passed
    with pytest.raises(IndexContractError, match="encoder"):
        searcher.search("vector search", mode="knn", k=3)
