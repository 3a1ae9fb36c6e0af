"""A minimal loopback stand-in for an Elasticsearch cluster that accepts ``_bulk`` and answers
success, so the client side of indexing (hashing, actions, serialisation, HTTP) can be timed
without a server's own indexing cost. Benchmarks only: it stores nothing.

    with fake_cluster(version="9.3.0") as url: ...
"""

from __future__ import annotations

import contextlib
import http.server
import json
import multiprocessing
import re
import socket
from collections.abc import Iterator
from typing import Any

_ID = re.compile(rb'"_id":\s*"((?:[^"\\]|\\.)*)"')


def _serve(port: int, version: str, ready: Any) -> None:
    indices: dict[str, Any] = {}
    received = {"bulk_bytes": 0, "bulk_docs": 0}

    class Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, status: int, body: Any = None) -> None:
            data = b"" if body is None else json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _body(self) -> bytes:
            length = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(length) if length else b""

        def do_HEAD(self) -> None:
            name = self.path.split("?")[0].strip("/")
            self._reply(200 if name in indices else 404)

        def do_GET(self) -> None:
            path = self.path.split("?")[0]
            if path == "/":
                return self._reply(200, {"name": "fake", "cluster_name": "fake",
                                         "version": {"number": version, "build_flavor": "default"},
                                         "tagline": "You Know, for Search"})  # fmt: skip
            if path == "/_fake/received":
                return self._reply(200, received)
            if path == "/_license":
                return self._reply(200, {"license": {"type": "basic", "status": "active"}})
            name = path.strip("/").split("/")[0]
            if path.endswith("/_mapping") and name in indices:
                return self._reply(200, {name: {"mappings": indices[name]}})
            return self._reply(404, {"error": {"type": "index_not_found_exception"}, "status": 404})

        def do_PUT(self) -> None:
            if self.path.split("?")[0].endswith("/_bulk"):
                return self.do_POST()
            body = self._body()
            name = self.path.split("?")[0].strip("/").split("/")[0]
            indices[name] = (json.loads(body) if body else {}).get("mappings", {})
            return self._reply(
                200, {"acknowledged": True, "shards_acknowledged": True, "index": name}
            )

        def do_POST(self) -> None:
            body = self._body()
            path = self.path.split("?")[0]
            if path.endswith("/_bulk"):
                lines = body.split(b"\n")
                items = [{"index": {"_id": m.group(1).decode(), "status": 201,
                                    "result": "created"}}
                         for m in (_ID.search(line) for line in lines[0::2]) if m]  # fmt: skip
                received["bulk_bytes"] += len(body)
                received["bulk_docs"] += len(items)
                return self._reply(200, {"took": 1, "errors": False, "items": items})
            if path.endswith("/_refresh"):
                return self._reply(200, {"_shards": {"total": 1, "successful": 1, "failed": 0}})
            if path.endswith("/_mget"):
                return self._reply(200, {"docs": []})
            return self._reply(200, {})

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    ready.set()
    server.serve_forever()


@contextlib.contextmanager
def fake_cluster(version: str = "9.3.0") -> Iterator[str]:
    """Serve the fake cluster in a child process (its CPU is not the client's) on a free port."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Event()
    process = ctx.Process(target=_serve, args=(port, version, ready), daemon=True)
    process.start()
    ready.wait(30)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        process.join(10)
