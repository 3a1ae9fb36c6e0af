"""clusters --write-field on an index with a sparse leg, against a real ES-API server behind a
proxy that leaves the excluded vectors out of ``_source`` (as Elasticsearch does)."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from es_semantic import Indexer
from es_semantic.cli import cli
from es_semantic.encoding.sparse import SparseEncoder
from es_semantic.schema.contract import escape_vector
from tests.integration.fault_proxy import SourceExcludes, fault_proxy
from tests.integration.test_sparse import DOCS, sparse_hits
from tests.sparse_models import build_tiny_mlm, splade_tiny_dir

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def splade() -> SparseEncoder:
    return SparseEncoder(splade_tiny_dir())


def _clusters(url: str, index: str, *extra: str):
    return CliRunner().invoke(cli, ["clusters", index, "--k", "2", "--write-field", "topic_id",
                                    "--json", "--es-url", url, *extra])  # fmt: skip


def test_write_back_keeps_the_sparse_leg(es, es_server, index_name, tiny, splade):
    """The write-back re-indexes whole documents; the sparse vectors are not in ``_source``
    on a real cluster, so they must be made again with the leg's model (found from the
    contract), or every labelled document drops out of the sparse leg."""
    Indexer(es, index_name, tiny, sparse_encoder=splade, chunking="none").index(DOCS)
    query = escape_vector(splade.encode_queries(["capital of france"])[0])
    assert sparse_hits(es, index_name, query)[0] == "paris"
    hidden = SourceExcludes(es_server.config.url, {"sparse", "embedding"})
    with fault_proxy(es_server.config.url, hidden) as proxy:
        result = _clusters(proxy.url, index_name)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == len(DOCS)
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name, query={"exists": {"field": "topic_id"}})["count"] == 6
    assert sparse_hits(es, index_name, query)[:1] == ["paris"], "the sparse vectors were lost"


def test_write_back_with_another_sparse_model_is_refused_before_any_write(
    es, es_server, index_name, tiny, splade, tmp_path
):
    Indexer(es, index_name, tiny, sparse_encoder=splade, chunking="none").index(DOCS)
    other = build_tiny_mlm(tmp_path / "other-splade", seed=3)
    hidden = SourceExcludes(es_server.config.url, {"sparse", "embedding"})
    with fault_proxy(es_server.config.url, hidden) as proxy:
        result = _clusters(proxy.url, index_name, "--sparse-model", str(other))
    assert result.exit_code != 0, result.output
    (line,) = result.output.strip().splitlines()
    assert index_name in line and "sparse" in line, line
    mapping = es.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert "topic_id" not in mapping.get("properties", {})
