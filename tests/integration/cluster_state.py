"""What the test suite may touch on a cluster, recorded before and compared after.

Tests name what they create with :func:`unique_name`. The session fixture
``cluster_left_as_found`` (conftest.py) records the indices, aliases,
templates and ingest pipelines at the start and fails the run at the end naming any that a
test left behind (or removed). Names starting with ``.`` (system and hidden indices) and what
Elasticsearch manages itself (``_meta.managed: true``) are not the suite's and are left out.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from elasticsearch import Elasticsearch

KINDS = ("indices", "aliases", "index templates", "component templates", "legacy templates",
         "ingest pipelines")  # fmt: skip
State = dict[str, frozenset[str]]


def unique_name(prefix: str = "test") -> str:
    """A name no other test, run or user on the cluster has: ``{prefix}-`` and 12 hex digits."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _ours(name: str, body: Any) -> bool:
    meta = body.get("_meta") if isinstance(body, Mapping) else None
    return not name.startswith(".") and not (isinstance(meta, Mapping) and meta.get("managed"))


def _names(pairs: Iterable[tuple[str, Any]]) -> frozenset[str]:
    return frozenset(name for name, body in pairs if _ours(name, body))


def _body(es: Elasticsearch, method: str, path: str) -> Any:
    """The JSON answer, or {} where the cluster has none of that kind (404) or no such API."""
    resp = es.options(ignore_status=(400, 404, 405)).perform_request(
        method, path, headers={"accept": "application/json"}
    )
    return resp.body if resp.meta.status == 200 and isinstance(resp.body, Mapping) else {}


def snapshot(es: Elasticsearch) -> State:
    """Names of each kind on the cluster now."""
    by_index = _body(es, "GET", "/_alias?expand_wildcards=all")
    aliases: list[tuple[str, Any]] = [
        (a, {}) for entry in by_index.values() for a in (entry.get("aliases") or {})
    ]
    index_templates = _body(es, "GET", "/_index_template").get("index_templates") or []
    components = _body(es, "GET", "/_component_template").get("component_templates") or []
    return {
        "indices": _names((name, {}) for name in by_index),
        "aliases": _names(aliases),
        "index templates": _names((t["name"], t["index_template"]) for t in index_templates),
        "component templates": _names((t["name"], t["component_template"]) for t in components),
        "legacy templates": _names(_body(es, "GET", "/_template").items()),
        "ingest pipelines": _names(_body(es, "GET", "/_ingest/pipeline").items()),
    }


def differences(before: State, after: State) -> list[str]:
    """One line per kind that changed: what is new, what is gone."""
    lines = []
    for kind in KINDS:
        left, removed = after[kind] - before[kind], before[kind] - after[kind]
        if left:
            lines.append(f"{kind} left behind: {', '.join(sorted(left))}")
        if removed:
            lines.append(
                f"{kind} removed that existed before the run: {', '.join(sorted(removed))}"
            )
    return lines
