"""The service under concurrent single-query load: dynamic batching on vs off, and overhead.

    python -m benchmarks.serve [--clients 32] [--seconds 15]

1. `--clients` threads each send one short query at a time to `/embed` for `--seconds`, against
   the service with dynamic batching (requests that arrive during a forward pass share the
   next) and then without (each request its own forward pass), same process, same model
   (all-MiniLM-L6-v2): requests/s, p50, p95, the ratio.
2. One client, one query at a time: the service's p50 over a direct `encode_queries([q])` p50
   (HTTP + JSON + queueing overhead). Clients keep their connection open, as a backend's
   connection pool does.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import uvicorn

from benchmarks.common import SCIFACT
from es_semantic import Encoder
from es_semantic.server import free_loopback_port
from es_semantic.service.app import ServiceConfig, create_app


@contextlib.contextmanager
def running(app: object) -> Iterator[str]:
    port = free_loopback_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=30)


def post(url: str, body: dict) -> None:
    request = urllib.request.Request(url, json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})  # fmt: skip
    with urllib.request.urlopen(request, timeout=60) as resp:
        resp.read()


class KeepAlive:
    """One persistent HTTP/1.1 connection, as a backend's client pool keeps them."""

    def __init__(self, url: str) -> None:
        host, port = url.removeprefix("http://").split(":")
        self.conn = http.client.HTTPConnection(host, int(port), timeout=60)

    def post(self, path: str, body: dict) -> None:
        self.conn.request("POST", path, json.dumps(body), {"Content-Type": "application/json"})
        response = self.conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"HTTP {response.status}")


def load(url: str, queries: list[str], clients: int, seconds: float) -> tuple[float, list[float]]:
    latencies: list[float] = []
    lock = threading.Lock()
    stop = time.perf_counter() + seconds

    def client(offset: int) -> None:
        i = offset
        connection = KeepAlive(url)
        while time.perf_counter() < stop:
            started = time.perf_counter()
            connection.post("/embed", {"inputs": queries[i % len(queries)], "prompt_name": "query"})
            with lock:
                latencies.append(time.perf_counter() - started)
            i += clients

    threads = [threading.Thread(target=client, args=(n,)) for n in range(clients)]
    began = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return len(latencies) / (time.perf_counter() - began), latencies


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15)
    args = parser.parse_args()
    lines = (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines]
    encoder = Encoder()
    encoder.encode_queries(queries[:8])  # warm
    rows = {}
    for name, batching in (("batching", True), ("no batching", False)):
        config = ServiceConfig(batching=batching, max_queue=4096)
        with running(create_app(encoder, config=config)) as url:
            post(f"{url}/embed", {"inputs": "warm up"})
            rows[name] = load(url, queries, args.clients, args.seconds)
    print(f"{args.clients} clients, single short queries to /embed for {args.seconds:.0f}s each")
    print(f"{'':<12} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8}")
    for name, (rate, latencies) in rows.items():
        print(f"{name:<12} {rate:>8.1f} {pct(latencies, 0.5):>8.1f} {pct(latencies, 0.95):>8.1f}")
    print(f"throughput ratio batching / no batching: "
          f"{rows['batching'][0] / rows['no batching'][0]:.2f}x")  # fmt: skip
    direct, served = [], []
    with running(create_app(encoder, config=ServiceConfig())) as url:
        connection = KeepAlive(url)
        for i in range(200):  # interleaved, so drift hits both alike
            query = queries[i % len(queries)]
            t0 = time.perf_counter()
            encoder.encode_queries([query])
            direct.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            connection.post("/embed", {"inputs": query, "prompt_name": "query"})
            served.append(time.perf_counter() - t0)
    overhead = (statistics.median(served) - statistics.median(direct)) * 1000
    print(f"one query at a time: direct encode p50 {pct(direct, 0.5):.2f} ms, via /embed "
          f"p50 {pct(served, 0.5):.2f} ms: overhead {overhead:.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
