"""A loopback HTTP proxy that answers rrf-retriever searches with Elasticsearch's 403 licence
error (as a basic-licence cluster does) and forwards everything else to the real server."""

from __future__ import annotations

import contextlib
import http.server
import json
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

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


@dataclass
class ProxyState:
    url: str
    refused: int = 0


@contextlib.contextmanager
def rrf_refusing_proxy(upstream: str) -> Iterator[ProxyState]:
    state = ProxyState(url="")

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):  # quiet
            pass

        def _forward(self):
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            if body and b'"rrf"' in body and b"retriever" in body:
                state.refused += 1
                if self.path.split("?")[0].endswith("_msearch"):
                    payload = {"took": 1, "responses": [LICENSE_ERROR]}
                    return self._reply(200, payload)
                return self._reply(403, LICENSE_ERROR)
            headers = {
                k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")
            }
            request = urllib.request.Request(
                upstream + self.path, data=body, method=self.command, headers=headers
            )
            try:
                with urllib.request.urlopen(request, timeout=60) as resp:
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

        def _reply(self, status, payload):
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/vnd.elasticsearch+json;compatible-with=8")
            self.send_header("X-Elastic-Product", "Elasticsearch")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _forward

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
