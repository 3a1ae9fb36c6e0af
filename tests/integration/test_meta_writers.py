"""Read-modify-writes of an index's mapping ``_meta`` against a real ES-API server: a
put-mapping replaces ``_meta`` whole, so each writer must keep what another wrote meanwhile."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from es_semantic import Encoder, Indexer
from es_semantic.cli import cli
from es_semantic.elastic.calls import run
from es_semantic.elastic.client import make_client
from es_semantic.evaluation.saved import save_tuning_steps
from es_semantic.indexing.admin import add_metadata_field_steps, read_contract
from es_semantic.schema.tuning import Tuning, tuning_from_mapping_response
from tests.integration.fault_proxy import MetaReplaced, fault_proxy
from tests.integration.test_clusters import topic_docs

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def real_meta(es_server, on_request=None):
    """A proxy where a put-mapping replaces ``_meta`` whole (as Elasticsearch does), and a
    client through it; ``on_request(client, method, path)`` runs before each request."""
    replaced = MetaReplaced(es_server.config.url)
    holder = {}

    def rule(method, path, body, headers):
        if on_request is not None and "client" in holder:
            on_request(holder["client"], method, path)
        return replaced(method, path, body, headers)

    with fault_proxy(es_server.config.url, rule) as proxy:
        holder["client"] = make_client(replace(es_server.config, url=proxy.url))
        try:
            yield proxy, holder["client"]
        finally:
            holder["client"].close()


def _another_writer_on_first_pit(index):
    """When clusters opens its scan (after reading the contract), another es-semantic run adds
    its own metadata field to the same index (as `index --dedupe flag` or a second
    `clusters --write-field` does)."""
    state = {"done": False}

    def on_request(client, method, path):
        if not state["done"] and path.split("?")[0].endswith("/_pit"):
            state["done"] = True
            contract = read_contract(client, index)
            run(client, add_metadata_field_steps(index, contract, "lang", "keyword"))

    return on_request


def test_clusters_write_field_keeps_a_field_another_writer_added_meanwhile(
    es, es_server, index_name, tiny_st_dir
):
    """clusters reads the contract, scans and fits (minutes on a large index), then adds its
    field to ``_meta``: the contract it writes back must be the one on the server now, not the
    one it read at the start, or the other writer's field leaves the contract."""
    Indexer(es, index_name, Encoder(tiny_st_dir), chunking="none").index(topic_docs(4))
    with real_meta(es_server, _another_writer_on_first_pit(index_name)) as (proxy, client):
        result = CliRunner().invoke(cli, ["clusters", index_name, "--k", "2", "--write-field",
                                          "topic_id", "--json", "--es-url", proxy.url])  # fmt: skip
        fields = read_contract(client, index_name).metadata_fields
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["written"] == 12
    assert fields.get("topic_id") == "integer", fields
    assert fields.get("lang") == "keyword", f"the other writer's field was lost: {fields}"


def test_a_field_added_through_an_alias_keeps_each_index_own_meta(es, es_server, index_name, tiny):
    """Two indices behind one alias, each with its own ``_meta`` (a tuning saved on one only):
    adding a metadata field through the alias writes each index its own ``_meta`` back."""
    first, second = f"{index_name}-a", f"{index_name}-b"
    try:
        for name in (first, second):
            Indexer(es, name, tiny, chunking="none").index([{"id": "1", "text": "hello"}])
        run(es, save_tuning_steps(second, Tuning("rrf", rank_constant=7)))
        es.indices.update_aliases(actions=[
            {"add": {"index": first, "alias": index_name, "is_write_index": True}},
            {"add": {"index": second, "alias": index_name}},
        ])  # fmt: skip
        with real_meta(es_server) as (_, client):
            contract = read_contract(client, index_name)
            run(client, add_metadata_field_steps(index_name, contract, "topic_id", "integer"))
            for name in (first, second):
                assert read_contract(client, name).metadata_fields.get("topic_id") == "integer"
            tuned = tuning_from_mapping_response(client.indices.get_mapping(index=second).body)
            untuned = tuning_from_mapping_response(client.indices.get_mapping(index=first).body)
        assert tuned is not None and tuned.rank_constant == 7
        assert untuned is None, "the second index's tuning was copied onto the first"
    finally:
        es.indices.delete(index=f"{first},{second}", ignore_unavailable=True)
