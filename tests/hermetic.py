"""The environment variables es-semantic reads, which no test may inherit from the shell."""

from __future__ import annotations

from collections.abc import Mapping

from es_semantic.config import ENV_VARS

# The connection variables (ESConfig.from_env) and every ES_SEMANTIC_* variable (model,
# backend, device, config file, export cache, and whatever is added under that prefix).
CONNECTION_VARS = tuple(ENV_VARS.values())
PACKAGE_PREFIX = "ES_SEMANTIC_"


def package_variables(environ: Mapping[str, str]) -> list[str]:
    """The names in ``environ`` that es-semantic reads (or may read: any ES_SEMANTIC_*)."""
    return sorted(n for n in environ if n in CONNECTION_VARS or n.startswith(PACKAGE_PREFIX))
