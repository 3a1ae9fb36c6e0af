"""Every path that writes vectors checks the index contract first: an index built with model A,
then each writer run with model B (same architecture and dimensions, other weights) refuses
before a single document changes. One place lists the writers, so a new one is added here."""

from __future__ import annotations

import asyncio
import json

import pytest
from click.testing import CliRunner

from es_semantic import Encoder, IndexContractError, Indexer
from es_semantic.cli import cli
from es_semantic.errors import ConfigError
from es_semantic.indexing.async_indexer import AsyncIndexer
from tests.tiny_models import build_tiny_bert, make_sentence_transformers

DOCS = [{"id": f"d{i}", "text": f"alpha beta gamma {i} delta search"} for i in range(6)]
NEW = [{"id": f"n{i}", "text": f"vector passage model {i}"} for i in range(4)]


@pytest.fixture(scope="module")
def other_dir(tmp_path_factory):
    """Same shape as the tiny test model, other weights: only the contract tells them apart."""
    folder = build_tiny_bert(tmp_path_factory.mktemp("tiny-other"), seed=7)
    return make_sentence_transformers(folder, prompts={"query": "query: ", "passage": "passage: "})


def _snapshot(es, index):
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=100, seq_no_primary_term=True)["hits"]["hits"]
    mapping = es.indices.get_mapping(index=index)[index]["mappings"]
    contract = mapping.get("_meta", {}).get("es_semantic")  # the migration record may be added
    return {h["_id"]: (h["_seq_no"], h["_source"].get("text")) for h in hits}, (
        mapping.get("properties"),
        contract,
    )


def _cli(es_server, model, *args):
    return CliRunner().invoke(
        cli, [*args, "--es-url", es_server.config.url, "--model", str(model)],
        catch_exceptions=False,
    )  # fmt: skip


def _library_index(es, es_server, index, model, tmp_path):
    Indexer(es, index, Encoder(model)).index(NEW)


def _async_index(es, es_server, index, model, tmp_path):
    async def go():
        from elasticsearch import AsyncElasticsearch

        aes = AsyncElasticsearch(es_server.config.url)
        try:
            await AsyncIndexer(aes, index, Encoder(model)).index(NEW)
        finally:
            await aes.close()

    asyncio.run(go())


def _cli_index(es, es_server, index, model, tmp_path):
    corpus = tmp_path / "new.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in NEW))
    result = _cli(es_server, model, "index", index, str(corpus), "--quiet",
                  "--dead-letter", str(tmp_path / "dead.jsonl"))  # fmt: skip
    assert result.exit_code == 1, result.output
    raise IndexContractError(result.output)


def _cli_dedupe(es, es_server, index, model, tmp_path):
    corpus = tmp_path / "new.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in DOCS))
    result = _cli(es_server, model, "index", index, str(corpus), "--quiet", "--dedupe-threshold",
                  "0.9", "--dedupe", "skip", "--dead-letter", str(tmp_path / "dead.jsonl"))  # fmt: skip
    assert result.exit_code == 1, result.output
    raise IndexContractError(result.output)


def _cli_clusters_write_back(es, es_server, index, model, tmp_path):
    result = _cli(es_server, model, "clusters", index, "--k", "2", "--write-field", "topic",
                  "--quiet")  # fmt: skip
    assert result.exit_code != 0, result.output
    raise IndexContractError(result.output)


def _cli_migrate_into_it(es, es_server, index, model, tmp_path):
    """Resuming a migration whose target (this index, recorded as the migration's own in its
    _meta) was begun with model A, now with model B, would write B's vectors into it."""
    from es_semantic.migration.plan import MIGRATION_META_KEY

    source, alias = f"{index}-src", f"{index}-live"
    Indexer(es, source, Encoder(model)).index(DOCS[:2])
    es.indices.put_alias(index=source, name=alias)
    meta = es.indices.get_mapping(index=index)[index]["mappings"]["_meta"]
    record = {MIGRATION_META_KEY: {"alias": alias, "from_index": source}}
    es.indices.put_mapping(index=index, meta={**meta, **record})
    try:
        result = _cli(es_server, model, "migrate", "--from", alias, "--to", index, "--quiet")
        assert result.exit_code != 0, result.output
        raise IndexContractError(result.output)
    finally:
        es.options(ignore_status=404).indices.delete(index=source)


def _ray_engine(es, es_server, index, model, tmp_path):
    """The Ray driver checks the contract before any actor writes."""
    ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra")
    from es_semantic.distributed import connect, index_files

    corpus = tmp_path / "new.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in NEW))
    started = not ray.is_initialized()
    if started:
        connect(None, include_dashboard=False, log_to_driver=False)  # the CPUs it may use
    try:
        index_files([str(corpus)], es_server.config, index, str(model))
    finally:
        if started:
            ray.shutdown()


WRITERS = {
    "Indexer.index": _library_index,
    "AsyncIndexer.index": _async_index,
    "cli index": _cli_index,
    "cli index --dedupe skip": _cli_dedupe,
    "cli clusters --write-field": _cli_clusters_write_back,
    "cli migrate --to": _cli_migrate_into_it,
    "index_files (Ray)": _ray_engine,
}


@pytest.mark.parametrize("writer", list(WRITERS))
def test_every_vector_writer_refuses_another_model(
    writer, es, es_server, index_name, tiny_st_dir, other_dir, tmp_path
):
    Indexer(es, index_name, Encoder(tiny_st_dir)).index(DOCS)
    before = _snapshot(es, index_name)
    with pytest.raises((IndexContractError, ConfigError)) as refused:
        WRITERS[writer](es, es_server, index_name, other_dir, tmp_path)
    text = str(refused.value)
    assert "built with" in text, text
    assert _snapshot(es, index_name) == before


# The learned sparse leg: an index built with sparse model A, each writer run with sparse model
# B (same shape, other weights) and the same dense model refuses before a document changes.
@pytest.fixture(scope="module")
def sparse_dirs(tmp_path_factory):
    from tests.sparse_models import build_tiny_mlm

    return (build_tiny_mlm(tmp_path_factory.mktemp("mlm-a"), seed=0),
            build_tiny_mlm(tmp_path_factory.mktemp("mlm-b"), seed=5))  # fmt: skip


def _sparse_library(es, es_server, index, dense, sparse, tmp_path):
    from es_semantic.encoding.sparse import SparseEncoder

    Indexer(es, index, Encoder(dense), sparse_encoder=SparseEncoder(sparse)).index(NEW)


def _sparse_async(es, es_server, index, dense, sparse, tmp_path):
    from es_semantic.encoding.sparse import SparseEncoder

    async def go():
        from elasticsearch import AsyncElasticsearch

        aes = AsyncElasticsearch(es_server.config.url)
        try:
            await AsyncIndexer(aes, index, Encoder(dense),
                               sparse_encoder=SparseEncoder(sparse)).index(NEW)  # fmt: skip
        finally:
            await aes.close()

    asyncio.run(go())


def _sparse_cli_index(es, es_server, index, dense, sparse, tmp_path):
    corpus = tmp_path / "new.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in NEW))
    result = _cli(es_server, dense, "index", index, str(corpus), "--quiet", "--sparse-model",
                  str(sparse), "--dead-letter", str(tmp_path / "dead.jsonl"))  # fmt: skip
    assert result.exit_code == 1, result.output
    raise IndexContractError(result.output)


def _sparse_ray_engine(es, es_server, index, dense, sparse, tmp_path):
    ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra")
    from es_semantic.distributed import connect, index_files
    from es_semantic.indexing.options import IndexOptions

    corpus = tmp_path / "new.jsonl"
    corpus.write_text("".join(json.dumps(d) + "\n" for d in NEW))
    started = not ray.is_initialized()
    if started:
        connect(None, include_dashboard=False, log_to_driver=False)  # the CPUs it may use
    try:
        options = IndexOptions(sparse_model=str(sparse))
        index_files([str(corpus)], es_server.config, index, str(dense), options=options)
    finally:
        if started:
            ray.shutdown()


SPARSE_WRITERS = {
    "Indexer.index sparse_encoder=": _sparse_library,
    "AsyncIndexer.index sparse_encoder=": _sparse_async,
    "cli index --sparse-model": _sparse_cli_index,
    "index_files (Ray) sparse_model=": _sparse_ray_engine,
}


@pytest.mark.parametrize("writer", list(SPARSE_WRITERS))
def test_every_sparse_writer_refuses_another_sparse_model(
    writer, es, es_server, index_name, tiny_st_dir, sparse_dirs, tmp_path
):
    from es_semantic.encoding.sparse import SparseEncoder

    model_a, model_b = sparse_dirs
    Indexer(es, index_name, Encoder(tiny_st_dir),
            sparse_encoder=SparseEncoder(model_a)).index(DOCS)  # fmt: skip
    before = _snapshot(es, index_name)
    with pytest.raises((IndexContractError, ConfigError)) as refused:
        SPARSE_WRITERS[writer](es, es_server, index_name, tiny_st_dir, model_b, tmp_path)
    assert "sparse leg built with" in str(refused.value), str(refused.value)
    assert _snapshot(es, index_name) == before
