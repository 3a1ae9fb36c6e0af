"""Make the local server answer like a basic-licence Elasticsearch 8.19 cluster.

The local ES-API server is lenient where Elasticsearch is strict: it runs the ``rrf`` retriever
as if licensed, has no ``_license`` API, and accepts the 9.x client's ``compatible-with=9``
headers. This rule for :func:`tests.integration.fault_proxy.fault_proxy` answers those as a
real basic-licence 8.19 cluster does (bodies as Elasticsearch sends them) and forwards the rest:

- ``GET /`` reports 8.19.3; ``GET /_license`` a basic, active licence;
- a search with an ``rrf`` or ``linear`` retriever gets the 403 ``security_exception``, also
  as an item of an ``_msearch`` (the other searches of that ``_msearch`` still run);
- a request with ``compatible-with=9`` (the 9.x client) gets the 400
  ``media_type_header_exception`` an 8.x cluster sends.

``ES_SEMANTIC_TEST_EMULATE=basic-8.19`` runs the whole integration suite through it
(``ES_SEMANTIC_TEST_EMULATE=9.x``: through cluster9.Cluster9, a basic-licence 9.x).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request
from typing import Any

VERSION = "8.19.3"
FEATURES = {"rrf": "Reciprocal Rank Fusion (RRF)", "linear": "linear retriever"}
_COMPAT = re.compile(r"compatible-with=(\d+)")


def license_error(feature: str) -> dict[str, Any]:
    reason = f"current license is non-compliant for [{feature}]"
    cause = {"type": "security_exception", "reason": reason, "license.expired.feature": feature}
    return {"error": {"root_cause": [cause], **cause}, "status": 403}


def media_type_error(accept: str, root: dict[str, Any] | None = None) -> dict[str, Any]:
    """The 400 a cluster (``root``: its ``GET /``, 8.19 by default) sends for a
    ``compatible-with`` version it does not speak: its own major or the one before."""
    major = int(str((root or ROOT)["version"]["number"]).split(".")[0])
    cause = {
        "type": "media_type_header_exception",
        "reason": "Invalid media-type value on headers [Accept, Content-Type]",
    }
    found = _COMPAT.search(accept)
    status = {
        "type": "status_exception",
        "reason": f"Accept version must be either version {major} or {major - 1}, but found "
        f"{found.group(1) if found else '?'}. Accept={accept}",
    }
    return {"error": {"root_cause": [cause], **cause, "caused_by": status}, "status": 400}


ROOT: dict[str, Any] = {
    "name": "es01",
    "cluster_name": "docker-cluster",
    "cluster_uuid": "basic-licence-emulation",
    "version": {
        "number": VERSION,
        "build_flavor": "default",
        "build_type": "docker",
        "build_hash": "emulated",
        "build_date": "2025-08-26T02:36:18.286938741Z",
        "build_snapshot": False,
        "lucene_version": "9.12.2",
        "minimum_wire_compatibility_version": "7.17.0",
        "minimum_index_compatibility_version": "7.0.0",
    },
    "tagline": "You Know, for Search",
}
LICENSE = {
    "license": {
        "status": "active",
        "uid": "0f8d4b5e-0c1a-4d8e-9a61-2f6b7c8d9e0f",
        "type": "basic",
        "issue_date": "2025-01-01T00:00:00.000Z",
        "issue_date_in_millis": 1735689600000,
        "max_nodes": 1000,
        "max_resource_units": None,
        "issued_to": "docker-cluster",
        "issuer": "elasticsearch",
        "start_date_in_millis": -1,
    }
}


def refused_feature(body: Any) -> str | None:
    """The licensed retriever a search body asks for (at any depth), if any."""
    if isinstance(body, dict):
        retriever = body.get("retriever")
        if isinstance(retriever, dict):
            for kind, feature in FEATURES.items():
                if kind in retriever:
                    return feature
        for value in body.values():
            if (found := refused_feature(value)) is not None:
                return found
    elif isinstance(body, list):
        for value in body:
            if (found := refused_feature(value)) is not None:
                return found
    return None


class BasicCluster:
    """The rule; counts what it refused (``refused``) so tests can assert nothing was sent.

    ``root`` and ``compatible_majors`` (the ``compatible-with`` values the cluster accepts)
    are what a subclass changes to answer as another version (cluster9.Cluster9)."""

    root: dict[str, Any] = ROOT
    compatible_majors: tuple[int, ...] = (7, 8)

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.refused: dict[str, int] = {}
        self._lock = threading.Lock()

    def _count(self, feature: str) -> None:
        with self._lock:
            self.refused[feature] = self.refused.get(feature, 0) + 1

    def forward_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """The headers a forwarded request carries to the server behind (unchanged here)."""
        return headers

    def __call__(self, method: str, path: str, body: bytes, headers: Any) -> Any:
        for name in ("Accept", "Content-Type"):
            value = headers.get(name) or ""
            found = _COMPAT.search(value)
            if found and int(found.group(1)) not in self.compatible_majors:
                return 400, media_type_error(headers.get("Accept") or value, self.root)
        route = path.split("?", 1)[0].rstrip("/")
        if method in ("GET", "HEAD") and route == "":
            return 200, self.root
        if route == "/_license":
            return 200, LICENSE
        if not body:
            return None
        if route.endswith("/_msearch"):
            return self._msearch(path, body, headers)
        if route.endswith("/_search"):
            try:
                feature = refused_feature(json.loads(body))
            except ValueError:
                return None
            if feature is not None:
                self._count(feature)
                return 403, license_error(feature)
        return None

    def _msearch(self, path: str, body: bytes, headers: Any) -> Any:
        lines = [line for line in body.decode().splitlines() if line.strip()]
        pairs = [(lines[i], lines[i + 1]) for i in range(0, len(lines) - 1, 2)]
        verdicts = [refused_feature(json.loads(search)) for _, search in pairs]
        if not any(verdicts):
            return None
        for feature in filter(None, verdicts):
            self._count(feature)
        allowed = [pair for pair, feature in zip(pairs, verdicts, strict=True) if not feature]
        answers: list[Any] = []
        took = 1
        if allowed:
            payload = "".join(f"{head}\n{search}\n" for head, search in allowed).encode()
            passed = self.forward_headers(
                {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
            )
            request = urllib.request.Request(
                self.upstream + path, data=payload, method="POST", headers=passed
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as resp:
                    upstream = json.loads(resp.read())
            except urllib.error.HTTPError as err:
                return err.code, json.loads(err.read() or b"{}")
            answers, took = upstream["responses"], upstream.get("took", 1)
        merged = []
        for feature in verdicts:
            merged.append(license_error(feature) if feature else answers.pop(0))
        return 200, {"took": took, "responses": merged}
