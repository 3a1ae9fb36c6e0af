"""The examples run against the integration session's server: the same fixtures (one server,
left as found; ``es``; ``index_name``), imported from tests/integration/conftest.py."""

from tests.integration.conftest import (  # noqa: F401 - fixtures are found by name
    cluster_left_as_found,
    es,
    es_server,
    index_name,
)
