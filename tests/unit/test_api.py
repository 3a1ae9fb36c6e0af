import inspect

import pytest

import es_semantic
from es_semantic.indexing.async_indexer import AsyncIndexer
from es_semantic.indexing.indexer import Indexer
from es_semantic.search.searcher import AsyncSearcher, Searcher


def test_all_matches_public_names():
    public = {n for n in dir(es_semantic) if not n.startswith("_") and n[0].isupper()}
    assert public <= set(es_semantic.__all__)
    for name in es_semantic.__all__:
        assert hasattr(es_semantic, name), name
    for name in ("Encoder", "CrossEncoder", "Indexer", "Searcher", "AsyncSearcher"):
        assert name in es_semantic.__all__


def _public_methods(cls):
    return {
        n: inspect.signature(m)
        for n, m in inspect.getmembers(cls, inspect.isfunction)
        if not n.startswith("_")
    }


@pytest.mark.parametrize(
    ("sync_cls", "async_cls"), [(Searcher, AsyncSearcher), (Indexer, AsyncIndexer)]
)
def test_sync_and_async_twins_have_the_same_api(sync_cls, async_cls):
    sync, async_ = _public_methods(sync_cls), _public_methods(async_cls)
    assert set(sync) == set(async_)
    for name, signature in sync.items():
        assert list(signature.parameters) == list(async_[name].parameters), name
        for param in signature.parameters:
            if param in ("es", "self"):
                continue
            assert signature.parameters[param].default == async_[name].parameters[param].default
        assert inspect.iscoroutinefunction(getattr(async_cls, name)) or name == "__init__"
