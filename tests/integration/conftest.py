"""One server for the whole integration session, from es_semantic.server's documented order."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from elasticsearch import Elasticsearch

from es_semantic.client import make_client
from es_semantic.errors import ConnectionFailedError
from es_semantic.server import ServerHandle, resolve_server


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/integration/" in str(item.path).replace("\\", "/"):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def es_server(request: pytest.FixtureRequest) -> Iterator[ServerHandle]:
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    try:
        with resolve_server() as handle:
            client = make_client(handle.config)  # fails fast: one line naming the URL
            client.close()
            capture = request.config.pluginmanager.get_plugin("capturemanager")
            if reporter is not None and capture is not None:
                with capture.global_and_fixture_disabled():  # shown even while output is captured
                    reporter.write_line(f"es-semantic test server: {handle.description}")
            yield handle
    except ConnectionFailedError as exc:
        pytest.exit(str(exc), returncode=1)


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
