"""One server for the whole integration session, from es_semantic.server's documented order."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from dataclasses import replace

import pytest
from elasticsearch import Elasticsearch

from es_semantic.client import make_client, probe_cluster
from es_semantic.config import ESConfig
from es_semantic.errors import ConnectionFailedError
from es_semantic.server import ServerHandle, resolve_server
from tests.integration.basic_cluster import BasicCluster
from tests.integration.fault_proxy import fault_proxy

# ES_SEMANTIC_TEST_EMULATE=basic-8.19: every test talks to the server through a proxy that
# answers like a basic-licence Elasticsearch 8.19 (see basic_cluster.py)
EMULATE = os.environ.get("ES_SEMANTIC_TEST_EMULATE", "")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def es_server(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if EMULATE not in ("", "basic-8.19"):
        pytest.exit(f"ES_SEMANTIC_TEST_EMULATE={EMULATE!r}: only 'basic-8.19' is known", 2)
    try:
        with resolve_server() as handle, _emulated(handle) as handle:
            client = make_client(handle.config)  # fails fast: one line naming the URL
            client.close()
            capture = request.config.pluginmanager.get_plugin("capturemanager")
            if reporter is not None and capture is not None:
                with capture.global_and_fixture_disabled():  # shown even while output is captured
                    reporter.write_line(f"es-semantic test server: {handle.description}")
            yield handle
    except ConnectionFailedError as exc:
        pytest.exit(str(exc), returncode=1)


@contextlib.contextmanager
def _emulated(handle: ServerHandle) -> Iterator[ServerHandle]:
    if EMULATE != "basic-8.19":
        yield handle
        return
    assert handle.config.url, "the basic-licence emulation needs a URL"
    with fault_proxy(handle.config.url, BasicCluster(handle.config.url)) as proxy:
        config = ESConfig(url=proxy.url)
        yield replace(handle, config=config, description=f"{handle.description}, seen "
                      f"through a basic-licence 8.19 proxy at {proxy.url}")  # fmt: skip


@pytest.fixture(scope="session")
def server_fusion(es_server: ServerHandle) -> None:
    """Skip unless the cluster may run the rrf retriever (8.14+, enterprise or trial licence;
    an unreadable licence, as on the local server, counts as allowed)."""
    client = make_client(es_server.config)
    try:
        why = probe_cluster(client).fusion_refusal("rrf")
    finally:
        client.close()
    if why is not None:
        pytest.skip(f"needs a cluster licensed for the rrf retriever: {why}")


@pytest.fixture(scope="session")
def es(es_server: ServerHandle) -> Iterator[Elasticsearch]:
    client = make_client(es_server.config)
    yield client
    client.close()


@pytest.fixture
def index_name(es: Elasticsearch) -> Iterator[str]:
    """A unique index name, deleted (with anything named after it) after the test."""
    name = f"test-{uuid.uuid4().hex[:12]}"
    yield name
    found = es.options(ignore_status=404).indices.get(index=f"{name}*", expand_wildcards="all")
    names = [n for n in found.body if n.startswith(name)] if found.meta.status == 200 else []
    if names:  # explicit names: clusters refuse wildcard deletes (destructive_requires_name)
        es.indices.delete(index=",".join(names))
