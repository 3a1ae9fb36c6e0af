"""One server for the whole integration session, from es_semantic.demo.server's documented order,
left as the session found it."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import replace

import pytest
from elasticsearch import Elasticsearch

from es_semantic.config import ESConfig
from es_semantic.demo.server import ServerHandle, resolve_server
from es_semantic.elastic.client import make_client, probe_cluster
from es_semantic.errors import ConnectionFailedError
from tests.integration.basic_cluster import BasicCluster
from tests.integration.cluster9 import Cluster9
from tests.integration.cluster_state import differences, snapshot, unique_name
from tests.integration.fault_proxy import fault_proxy

# ES_SEMANTIC_TEST_EMULATE: every test talks to the server through a proxy that answers like
# a basic-licence Elasticsearch 8.19 (basic_cluster.py) or 9.1 (cluster9.py). Read here, at
# import, before tests/conftest.py takes the ES_SEMANTIC_* variables out of the environment.
EMULATE = os.environ.get("ES_SEMANTIC_TEST_EMULATE", "")
# ES_SEMANTIC_TEST_SERVER_PID: ES_URL is a local noida-db that scripts/test.sh started
# (local_cluster.py) for several runs; the tests treat it as the one they would start.
SERVER_PID = os.environ.get("ES_SEMANTIC_TEST_SERVER_PID", "")
EMULATIONS = {"basic-8.19": (BasicCluster, "a basic-licence 8.19"),
              "9.x": (Cluster9, "a basic-licence 9.x")}  # fmt: skip


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def es_server(
    request: pytest.FixtureRequest, shell_environment: dict[str, str]
) -> Iterator[ServerHandle]:
    """The session's server, chosen from the shell's ES_URL / connection variables (as they
    were before the tests' environment was cleared), else Docker, else a local noida-db."""
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if EMULATE not in ("", *EMULATIONS):
        known = " or ".join(repr(k) for k in EMULATIONS)
        pytest.exit(f"ES_SEMANTIC_TEST_EMULATE={EMULATE!r}: only {known} are known", 2)
    try:
        with resolve_server(shell_environment) as found, _emulated(_local(found)) as handle:
            client = make_client(handle.config)  # fails fast: one line naming the URL
            client.close()
            capture = request.config.pluginmanager.get_plugin("capturemanager")
            if reporter is not None and capture is not None:
                with capture.global_and_fixture_disabled():  # shown even while output is captured
                    reporter.write_line(f"es-semantic test server: {handle.description}")
            yield handle
    except ConnectionFailedError as exc:
        pytest.exit(str(exc), returncode=1)


def _local(handle: ServerHandle) -> ServerHandle:
    if not SERVER_PID or handle.kind != "ES_URL":
        return handle
    description = (
        f"local noida-db (pid {SERVER_PID}, started by scripts/test.sh) at {handle.config.url}"
    )
    return replace(handle, kind="noida-db", pid=int(SERVER_PID), description=description)


@contextlib.contextmanager
def _emulated(handle: ServerHandle) -> Iterator[ServerHandle]:
    if not EMULATE:
        yield handle
        return
    assert handle.config.url, f"the {EMULATE} emulation needs a URL"
    make_rule, what = EMULATIONS[EMULATE]
    rule = make_rule(handle.config.url)
    with fault_proxy(handle.config.url, rule, forward_headers=rule.forward_headers) as proxy:
        config = ESConfig(url=proxy.url)
        yield replace(handle, config=config, description=f"{handle.description}, seen "
                      f"through {what} proxy at {proxy.url}")  # fmt: skip


@pytest.fixture(scope="session", autouse=True)
def cluster_left_as_found(es_server: ServerHandle) -> Iterator[None]:
    """Fail the run, naming them, when the session leaves indices, aliases, templates or
    pipelines on the server that were not there at its start (or removes some that were)."""
    client = make_client(es_server.config)
    try:
        before = snapshot(client)
        yield
        changed = differences(before, snapshot(client))
    finally:
        client.close()
    if changed:
        pytest.fail(
            f"the integration tests did not leave {es_server.description} as they found it: "
            + "; ".join(changed),
            pytrace=False,
        )


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


def delete_named(es: Elasticsearch, name: str) -> None:
    """Delete the indices whose names start with ``name`` (their aliases go with them); by
    explicit names, as clusters refuse wildcard deletes (destructive_requires_name)."""
    found = es.options(ignore_status=404).indices.get(index=f"{name}*", expand_wildcards="all")
    names = [n for n in found.body if n.startswith(name)]
    if found.meta.status == 200 and names:
        es.indices.delete(index=",".join(names))


@pytest.fixture
def index_name(es: Elasticsearch) -> Iterator[str]:
    """A unique index name, deleted (with anything named after it) after the test."""
    name = unique_name()
    yield name
    delete_named(es, name)
