"""The test harness itself: the 9.x emulation and the check that the cluster is left as found."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import pytest

from es_semantic.config import ESConfig
from es_semantic.elastic.client import make_client, probe_cluster
from tests.integration.cluster9 import VERSION, Cluster9
from tests.integration.cluster_state import differences, snapshot, unique_name
from tests.integration.fault_proxy import fault_proxy
from tests.integration.wire import Recorder, vector_requests

NINE = "application/vnd.elasticsearch+json; compatible-with=9"


def call(url: str, path: str, media: str, body: Any = None) -> tuple[int, dict[str, Any]]:
    data = None if body is None else json.dumps(body).encode()
    headers = {"Accept": media, **({"Content-Type": media} if data else {})}
    request = urllib.request.Request(url + path, data=data, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_the_9x_proxy_answers_like_elasticsearch_9(es, es_server, index_name):
    """Version and licence of a basic 9.1; the 9.x client's media type accepted and passed on
    as compatible-with=8 to the 8.15 server behind; 7 refused; licensed retrievers refused."""
    es.indices.create(index=index_name)
    with fault_proxy(es_server.config.url, behind := Recorder()) as server:
        rule = Cluster9(server.url)
        with fault_proxy(server.url, rule, forward_headers=rule.forward_headers) as proxy:
            status, root = call(proxy.url, "/", NINE)
            assert (status, root["version"]["number"]) == (200, VERSION)
            assert call(proxy.url, "/_license", NINE)[1]["license"]["type"] == "basic"
            search = {"query": {"match_all": {}}}
            status, found = call(proxy.url, f"/{index_name}/_search", NINE, search)
            assert status == 200 and found["hits"]["total"]["value"] == 0
            status, refused = call(proxy.url, "/", NINE.replace("=9", "=7"))
            assert status == 400 and "either version 9 or 8" in json.dumps(refused)
            rrf = {"retriever": {"rrf": {"retrievers": [{"standard": {"query": search["query"]}}]}}}
            assert call(proxy.url, f"/{index_name}/_search", NINE, rrf)[0] == 403
            client = make_client(ESConfig(url=proxy.url))  # this run's client, 8.x or 9.x
            cluster = probe_cluster(client)
            client.close()
    assert cluster.version[0] == 9 and cluster.licensed is False
    (seen,) = [h for (_, path, _), h in zip(behind.requests, behind.headers, strict=True)
               if path.startswith(f"/{index_name}/_search")]  # fmt: skip
    assert "compatible-with=8" in seen["Accept"] and "compatible-with=8" in seen["Content-Type"]
    assert "compatible-with=9" not in json.dumps(behind.headers)
    assert rule.refused == {"Reciprocal Rank Fusion (RRF)": 1}


def test_the_leftover_check_names_what_a_test_leaves(es):
    """What the session-end check compares: an index, its alias and an index template made
    after the first snapshot are named; once removed, nothing is."""
    name = unique_name("test-leftover")
    before = snapshot(es)
    try:
        es.indices.create(index=name, aliases={f"{name}-alias": {}})
        es.indices.put_index_template(name=f"{name}-template", index_patterns=[f"{name}-x-*"])
        changed = differences(before, snapshot(es))
    finally:
        es.options(ignore_status=404).indices.delete_index_template(name=f"{name}-template")
        es.options(ignore_status=404).indices.delete(index=name)
    assert changed == [
        f"indices left behind: {name}",
        f"aliases left behind: {name}-alias",
        f"index templates left behind: {name}-template",
    ]
    assert differences(before, snapshot(es)) == []


@pytest.mark.parametrize("kind", ["indices", "aliases"])
def test_the_leftover_check_also_names_what_a_test_removed(kind):
    before = {k: frozenset() for k in ("indices", "aliases", "index templates",
              "component templates", "legacy templates", "ingest pipelines")}  # fmt: skip
    after = dict(before)
    before[kind] = frozenset({"users-data"})
    assert differences(before, after) == [f"{kind} removed that existed before the run: users-data"]


@pytest.mark.parametrize(
    ("body", "found"),
    [
        ({"query": {"match_all": {}}, "_source": {"excludes": ["passages"]}}, []),
        ({"_source": False, "knn": {"inner_hits": {"_source": False, "fields": ["passages.text"]}}},
         []),
        ({"query": {"match_all": {}}}, ["_source True does not exclude 'passages'"]),
        ({"_source": {"includes": ["title"]}}, ["_source {'includes': ['title']} does not exclude 'passages'"]),
        ({"_source": False, "knn": {"inner_hits": {"size": 1}}}, ["body.knn.inner_hits returns _source"]),
        ({"_source": False, "fields": ["passages.embedding"]},
         ["body.fields names a vector: ['passages.embedding']"]),
    ],
)  # fmt: skip
def test_the_wire_check_finds_requests_that_could_return_vectors(body, found):
    assert vector_requests(body, hidden="passages") == found
