"""A loopback HTTP proxy in front of the real server that can answer chosen requests itself.

Used to inject what a production cluster does and the local server does not: a basic-licence
403 for the rrf retriever, 429 rejections under load. Everything else is forwarded unchanged.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

# (method, path, body, headers) -> (status, JSON payload) to answer instead of the server, or None
Rule = Callable[[str, str, bytes, Any], "tuple[int, Any] | None"]

LICENSE_ERROR = {
    "error": {
        "root_cause": [
            {
                "type": "security_exception",
                "reason": "current license is non-compliant for [Reciprocal Rank Fusion (RRF)]",
                "license.expired.feature": "Reciprocal Rank Fusion (RRF)",
            }
        ],
        "type": "security_exception",
        "reason": "current license is non-compliant for [Reciprocal Rank Fusion (RRF)]",
        "license.expired.feature": "Reciprocal Rank Fusion (RRF)",
    },
    "status": 403,
}
REJECTED = {
    "error": {
        "root_cause": [
            {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation",
            }
        ],
        "type": "es_rejected_execution_exception",
        "reason": "rejected execution of coordinating operation",
    },
    "status": 429,
}


RESET = -1  # a rule answering (RESET, None) drops the connection, as a restarting node does


@dataclass
class ProxyState:
    url: str = ""
    injected: int = 0


@contextlib.contextmanager
def fault_proxy(
    upstream: str,
    rule: Rule,
    tls: tuple[str, str] | None = None,
    forward_headers: Callable[[dict[str, str]], dict[str, str]] | None = None,
) -> Iterator[ProxyState]:
    """``tls=(certfile, keyfile)`` serves https (a TLS-terminating front of the real server);
    ``forward_headers`` rewrites the headers of what is forwarded (cluster9: compatible-with)."""
    state = ProxyState()
    lock = threading.Lock()

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _forward(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            answer = rule(self.command, self.path, body, self.headers)
            if answer is not None:
                with lock:
                    state.injected += 1
                if answer[0] == RESET:  # drop the connection without an answer
                    self.close_connection = True
                    return None
                return self._reply(*answer)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            if forward_headers is not None:
                headers = forward_headers(headers)
            request = urllib.request.Request(
                upstream + self.path, data=body or None, method=self.command, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=120) as resp:
                    status, data, resp_headers = resp.status, resp.read(), resp.headers
            except urllib.error.HTTPError as err:
                status, data, resp_headers = err.code, err.read(), err.headers
            self.send_response(status)
            for key, value in resp_headers.items():
                if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                    self.send_header(key, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return None

        def _reply(self, status: int, payload: Any) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    scheme = "http"
    if tls is not None:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(*tls)
        server.socket = context.wrap_socket(server.socket, server_side=True)
        scheme = "https"
    state.url = f"{scheme}://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()


def refuse_rrf(method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any] | None:
    """Answer rrf-retriever searches as a basic-licence cluster does."""
    if b'"rrf"' in body and b"retriever" in body:
        if path.split("?")[0].endswith("_msearch"):
            return 200, {"took": 1, "responses": [LICENSE_ERROR]}
        return 403, LICENSE_ERROR
    return None


def reject_first_bulks(count: int, status: int = 429) -> Rule:
    """Answer the first ``count`` _bulk requests with 429 (overloaded) or 503 (unavailable)."""
    seen = {"n": 0}
    body = (
        REJECTED
        if status == 429
        else {"error": {"type": "unavailable", "reason": "node restarting"}, "status": status}
    )

    def rule(method: str, path: str, payload: bytes, headers: Any) -> tuple[int, Any] | None:
        if path.split("?")[0].endswith("_bulk") and seen["n"] < count:
            seen["n"] += 1
            return status, body
        return None

    return rule


def require_authorization(expected: str) -> Rule:
    """Answer 401 (as a secured cluster does) unless the Authorization header equals ``expected``."""

    def rule(method: str, path: str, payload: bytes, headers: Any) -> tuple[int, Any] | None:
        if headers.get("Authorization") != expected:
            return 401, {
                "error": {
                    "type": "security_exception",
                    "reason": "missing authentication credentials",
                },
                "status": 401,
            }
        return None

    return rule


def forward_all(method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any] | None:
    """Inject nothing (a plain TLS front)."""
    return None


def echo_credentials(expected: str, marker: bytes = b"ECHO-ME") -> Rule:
    """A credential-checking server that misbehaves: 401 unless the Authorization header is
    exactly ``expected``; then any ``_bulk`` or ``_msearch`` whose body holds ``marker`` fails,
    and its error reason quotes the Authorization header back (as some proxies and plugins do).
    Whatever es-semantic writes from those errors must not carry the credential."""
    refuse = require_authorization(expected)

    def rule(method: str, path: str, payload: bytes, headers: Any) -> tuple[int, Any] | None:
        denied = refuse(method, path, payload, headers)
        if denied is not None or marker not in payload:
            return denied
        reason = f"rejected request with Authorization: {headers.get('Authorization')}"
        error = {"type": "illegal_argument_exception", "reason": reason}
        route = path.split("?")[0]
        lines = [json.loads(x) for x in payload.decode().splitlines() if x.strip()]
        if route.endswith("_bulk"):
            items = []
            for line in lines:
                op = next(iter(line)) if len(line) == 1 else None
                if op in ("index", "create", "update", "delete"):
                    meta = line[op]
                    items.append({op: {"_index": meta.get("_index"), "_id": meta.get("_id"),
                                       "status": 400, "error": error}})  # fmt: skip
            return 200, {"took": 1, "errors": True, "items": items}
        if route.endswith("_msearch"):
            answer = {"error": {"root_cause": [error], **error}, "status": 400}
            return 200, {"took": 1, "responses": [answer] * (len(lines) // 2)}
        return 400, {"error": {"root_cause": [error], **error}, "status": 400}

    return rule


def _send_upstream(
    upstream: str, method: str, path: str, body: bytes, headers: Any
) -> tuple[int, Any]:
    """Forward one request from a rule itself (to act once it has completed)."""
    kept = {k: v for k, v in headers.items() if k.lower() not in ("host", "content-length")}
    request = urllib.request.Request(
        upstream + path, data=body or None, method=method, headers=kept
    )
    try:
        with urllib.request.urlopen(request, timeout=120) as resp:
            status, data = resp.status, resp.read()
    except urllib.error.HTTPError as err:
        status, data = err.code, err.read()
    return status, json.loads(data) if data else {}


def _bulk_targets(path: str, body: bytes) -> set[str]:
    """The indices or aliases a ``_bulk`` request writes to (its path's and its actions')."""
    parts = path.split("?")[0].strip("/").split("/")
    names = {parts[0]} if len(parts) == 2 else set()
    for line in body.decode("utf-8", "replace").splitlines():
        if not line.strip():
            continue
        with contextlib.suppress(ValueError):
            action = json.loads(line)
            if isinstance(action, dict) and len(action) == 1:
                ((op, meta),) = action.items()
                if op in ("index", "create", "update", "delete") and isinstance(meta, dict):
                    names.add(str(meta.get("_index", "")))
    return names - {""}


def _sets_write_block(body: bytes) -> bool:
    """Whether an update-settings body sets ``index.blocks.write`` to true (flat or nested)."""
    try:
        settings = json.loads(body or b"{}")
    except ValueError:
        return False
    flat = settings.get("settings", settings)
    nested = flat.get("index", {}) if isinstance(flat.get("index"), dict) else {}
    value = flat.get("index.blocks.write", (nested.get("blocks") or {}).get("write"))
    return str(value).lower() == "true"


class HoldBulkAcrossBlock:
    """A ``_bulk`` in flight while the write block arrives, as on a real cluster (the local
    server is serial: it never has two requests in flight).

    The first ``_bulk`` that writes to one of ``names`` is held (``held`` is set), then:
    - ``PUT /{index}/_block/write`` (the add-index-block API) releases it and is forwarded only
      once it has completed: the API "ensures ... that all in-flight writes to an index have
      been completed after adding the write block";
    - ``PUT /{index}/_settings`` setting ``index.blocks.write`` is acknowledged at once, as the
      settings API does without waiting for writes in flight; the held bulk completes later
      (when the next ``_aliases`` request arrives, or after ``hold_s``) and the block is applied
      right after it, so the bulk succeeds as an admitted write does.
    ``answers``: what the held bulk got back."""

    def __init__(self, upstream: str, index: str, names: set[str], hold_s: float = 60) -> None:
        self.upstream, self.index, self.names, self.hold_s = upstream, index, names, hold_s
        self.held, self._release, self._done = (threading.Event() for _ in range(3))
        self._pending_block: tuple[str, str, bytes, Any] | None = None
        self._lock = threading.Lock()
        self.answers: list[tuple[int, Any]] = []

    def __call__(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any] | None:
        route = path.split("?")[0]
        in_flight = self.held.is_set() and not self._done.is_set()
        if route.endswith("/_bulk") and self.names & _bulk_targets(path, body):
            with self._lock:
                first = not self.held.is_set()
                self.held.set()
            if first:
                return self._hold(method, path, body, headers)
        elif in_flight and method == "PUT" and route == f"/{self.index}/_block/write":
            self._release.set()
            self._done.wait(self.hold_s)  # forwarded once the write in flight has completed
        elif in_flight and method == "PUT" and route == f"/{self.index}/_settings":
            if _sets_write_block(body):
                self._pending_block = (method, path, body, headers)
                return 200, {"acknowledged": True}
        elif in_flight and route.endswith("/_aliases"):
            self._release.set()
            self._done.wait(self.hold_s)
        return None

    def _hold(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any]:
        self._release.wait(self.hold_s)
        answer = _send_upstream(self.upstream, method, path, body, headers)
        self.answers.append(answer)
        if self._pending_block is not None:  # the settings block takes effect after the write
            _send_upstream(self.upstream, *self._pending_block)
        self._done.set()
        return answer


class HoldAfterWriteBlock:
    """Let ``PUT /{index}/_block/write`` through, then hold the next request (``held`` set)
    until ``release`` is set or ``hold_s`` passes: a migration caught with writes blocked."""

    def __init__(self, index: str, hold_s: float = 120) -> None:
        self.index, self.hold_s = index, hold_s
        self.held, self.release = threading.Event(), threading.Event()
        self._blocked = False
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any] | None:
        with self._lock:
            hold = self._blocked and not self.held.is_set()
            if hold:
                self.held.set()
            if method == "PUT" and path.split("?")[0] == f"/{self.index}/_block/write":
                self._blocked = True
        if hold:
            self.release.wait(self.hold_s)
        return None


def block_not_shards_acknowledged(upstream: str, index: str) -> Rule:
    """Forward ``PUT /{index}/_block/write`` and answer ``shards_acknowledged: false``, as
    Elasticsearch does when not every shard confirmed the block before the timeout."""

    def rule(method: str, path: str, payload: bytes, headers: Any) -> tuple[int, Any] | None:
        if method == "PUT" and path.split("?")[0] == f"/{index}/_block/write":
            status, answer = _send_upstream(upstream, method, path, payload, headers)
            return status, {**answer, "shards_acknowledged": False}
        return None

    return rule


class MetaReplaced:
    """A put-mapping ``_meta`` replaces the whole object, as Elasticsearch does (the local
    server merges it into the old one, so a writer that drops another's keys goes unseen).

    Each ``PUT /{names}/_mapping`` carrying ``_meta`` is forwarded (its properties applied) and
    its ``_meta`` recorded as the whole ``_meta`` of every index it reached; ``GET .../_mapping``
    answers carry the recorded ``_meta`` of those indices."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.metas: dict[str, Any] = {}
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any] | None:
        route = path.split("?")[0]
        if not route.endswith("/_mapping") or method not in ("GET", "PUT", "POST"):
            return None
        with self._lock:  # one mapping read or write at a time, as the cluster's master does
            if method == "GET":
                status, answer = _send_upstream(self.upstream, method, path, body, headers)
                if status == 200:
                    for name, entry in answer.items():
                        if name in self.metas:
                            entry.setdefault("mappings", {})["_meta"] = self.metas[name]
                return status, answer
            status, answer = _send_upstream(self.upstream, method, path, body, headers)
            meta = json.loads(body or b"{}").get("_meta")
            if status == 200 and meta is not None:
                _, reached = _send_upstream(self.upstream, "GET", route, b"", headers)
                for name in reached:
                    self.metas[name] = meta
            return status, answer


class SourceExcludes:
    """Search hits without the mapping's ``_source.excludes`` fields (``fields``, top-level
    names), as Elasticsearch returns them: the local server ignores the excludes and keeps
    the vectors in ``_source``, so a writer that rebuilds documents from it loses nothing
    there and everything on a real cluster."""

    def __init__(self, upstream: str, fields: set[str]) -> None:
        self.upstream, self.fields = upstream, fields

    def __call__(self, method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any] | None:
        if not path.split("?")[0].endswith("/_search"):
            return None
        status, answer = _send_upstream(self.upstream, method, path, body, headers)
        for hit in (answer.get("hits") or {}).get("hits", []) if status == 200 else []:
            for name in self.fields & set(hit.get("_source") or {}):
                del hit["_source"][name]
        return status, answer


def reject_deletes(status: int = 429) -> Rule:
    """Answer every ``_bulk`` of delete actions item by item with ``status`` (an overloaded
    node's ``es_rejected_execution_exception``), as a busy cluster does: the request succeeds,
    each delete in it fails."""

    def rule(method: str, path: str, payload: bytes, headers: Any) -> tuple[int, Any] | None:
        if not path.split("?")[0].endswith("_bulk"):
            return None
        lines = [json.loads(x) for x in payload.decode().splitlines() if x.strip()]
        if not lines or any(next(iter(line)) != "delete" for line in lines):
            return None
        error = REJECTED["error"]
        items = [{"delete": {"_index": line["delete"].get("_index"), "_id": line["delete"]["_id"],
                             "status": status, "error": error}} for line in lines]  # fmt: skip
        return 200, {"took": 1, "errors": True, "items": items}

    return rule
