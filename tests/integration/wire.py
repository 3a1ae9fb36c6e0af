"""What es-semantic sends, recorded on the wire by a fault_proxy rule that answers nothing.

Hits carry no vectors because the index leaves them out of ``_source`` (the mapping) and
every search asks for none (the request). The client also drops the keys from what it
returns, so looking at returned hits cannot tell; these helpers look at the requests.
"""

from __future__ import annotations

import json
import threading
from typing import Any


class Recorder:
    """A rule for :func:`tests.integration.fault_proxy.fault_proxy` keeping every request."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, str, bytes]] = []
        self.headers: list[dict[str, str]] = []  # each request's, in the same order
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, body: bytes, headers: Any) -> None:
        with self._lock:
            self.requests.append((method, path, body))
            self.headers.append(dict(headers.items()))

    def search_bodies(self) -> list[dict[str, Any]]:
        """Every search sent: each ``_search`` body and each search of an ``_msearch``."""
        bodies: list[dict[str, Any]] = []
        for _, path, body in self.requests:
            route = path.split("?", 1)[0]
            if route.endswith("/_search") and body:
                bodies.append(json.loads(body))
            elif route.endswith("/_msearch"):
                lines = [json.loads(x) for x in body.decode().splitlines() if x.strip()]
                bodies.extend(lines[1::2])
        return bodies


def vector_requests(
    body: dict[str, Any], hidden: str, vector_field: str = "embedding"
) -> list[str]:
    """Where a search body could bring vectors back: its ``_source`` not excluding ``hidden``
    (the vector field, or ``passages`` on chunked indices), an inner hit with ``_source``,
    ``fields``/``docvalue_fields`` naming the vector field. Empty when it asks for none."""
    found: list[str] = []
    source = body.get("_source", True)
    excluded = source.get("excludes", []) if isinstance(source, dict) else []
    if source is not False and hidden not in excluded:
        found.append(f"_source {source!r} does not exclude {hidden!r}")

    def walk(node: Any, where: str) -> None:
        if isinstance(node, dict):
            for key, value in node.items():
                if key == "inner_hits" and value.get("_source", True) is not False:
                    found.append(f"{where}.inner_hits returns _source")
                if key in ("fields", "docvalue_fields") and any(
                    vector_field in json.dumps(f) for f in value
                ):
                    found.append(f"{where}.{key} names a vector: {value}")
                walk(value, f"{where}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                walk(value, f"{where}[{i}]")

    walk(body, "body")
    return found
