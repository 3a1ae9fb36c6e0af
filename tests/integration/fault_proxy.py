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


@dataclass
class ProxyState:
    url: str = ""
    injected: int = 0


@contextlib.contextmanager
def fault_proxy(
    upstream: str, rule: Rule, tls: tuple[str, str] | None = None
) -> Iterator[ProxyState]:
    """``tls=(certfile, keyfile)`` serves https (a TLS-terminating front of the real server)."""
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
                return self._reply(*answer)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
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
