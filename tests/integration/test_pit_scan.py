"""Point-in-time scans on a cluster that loses a shard: by default Elasticsearch answers such a
search with the other shards' hits and ``_shards.failed`` (``allow_partial_search_results``), so a
scan that took that answer would copy, or check, an index with documents missing and never say.
The scans ask for no partial results and refuse a page with failed shards."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from es_semantic import Encoder
from es_semantic.elastic.client import make_client
from es_semantic.errors import EsSemanticError
from es_semantic.migration.migrator import migrate
from tests.integration.corpus import DOCS
from tests.integration.fault_proxy import _send_upstream, fault_proxy
from tests.integration.migration_fixtures import alias_on_index

SHARD_LOST = {
    "error": {
        "root_cause": [{"type": "no_shard_available_action_exception", "reason": "shard lost"}],
        "type": "search_phase_execution_exception",
        "reason": "Partial shards failure",
        "phase": "query",
    },
    "status": 503,
}


def lose_a_shard(upstream: str) -> Any:
    """PIT searches as a cluster with one lost shard answers them: an error when partial results
    are refused, else the page without that shard's hit (here: its first) and the failure
    counted in ``_shards``."""

    def rule(method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any] | None:
        if path.split("?")[0] != "/_search" or b'"pit"' not in body:
            return None
        if "allow_partial_search_results=false" in path:
            return 503, SHARD_LOST
        status, answer = _send_upstream(upstream, method, path, body, headers)
        hits = answer.get("hits", {}).get("hits", [])
        if status != 200 or not hits:
            return status, answer
        failure = {"shard": 1, "index": hits[0]["_index"], "reason": SHARD_LOST["error"]}
        shards = {"total": 2, "successful": 1, "skipped": 0, "failed": 1, "failures": [failure]}
        return 200, {**answer, "_shards": shards, "hits": {**answer["hits"], "hits": hits[1:]}}

    return rule


def test_a_migration_over_a_lost_shard_stops_before_the_swap(es, es_server, index_name, tiny,
                                                               tiny_bert_dir):  # fmt: skip
    alias, old = alias_on_index(es, index_name, tiny, DOCS)
    upstream = es_server.config.url or ""
    with fault_proxy(upstream, lose_a_shard(upstream)) as proxy:
        client = make_client(replace(es_server.config, url=proxy.url))
        try:
            with pytest.raises(EsSemanticError):
                migrate(client, alias, Encoder(tiny_bert_dir), new_index=f"{alias}-v2")
        finally:
            client.close()
    assert list(es.indices.get_alias(name=alias).body) == [old]


def test_a_duplicates_scan_over_a_lost_shard_fails_instead_of_scanning_part_of_the_index(
    es, es_server, index_name, tiny
):
    from elasticsearch import ApiError

    from es_semantic.corpus.duplicates import find_duplicates

    docs = [{"id": str(n), "text": "the same sentence, again"} for n in range(4)]
    alias_on_index(es, index_name, tiny, docs)
    upstream = es_server.config.url or ""
    with fault_proxy(upstream, lose_a_shard(upstream)) as proxy:
        client = make_client(replace(es_server.config, url=proxy.url))
        try:
            with pytest.raises(ApiError, match="shard lost"):
                list(find_duplicates(client, index_name, threshold=0.99, encoder=tiny))
        finally:
            client.close()
    assert (
        len(list(find_duplicates(es, index_name, threshold=0.99, encoder=tiny))) == 6
    )  # 4 docs, all alike
