"""The service under concurrent single-query load: dynamic batching on vs off, and overhead.

    python -m benchmarks.serve [--clients 32] [--seconds 15] [--json]

0. The ceiling: the encoder alone (no service), `--clients` queries as one batch against
   `--clients` calls of one query each, interleaved: no service can batch better than this.
1. `--clients` threads (in a process of their own, as a service's clients are: with
   `--in-process-clients` they share the service's interpreter lock) each send one short
   query at a time to `/embed` for `--seconds`, against the service with dynamic batching
   (requests that arrive during a forward pass share the next) and then without (each request
   its own forward pass), same model (all-MiniLM-L6-v2, the default backend and precision):
   requests/s, p50, p95, the ratio, texts per forward pass and the share of the wall time the
   encoder was busy.
2. One client, one query at a time: the service's p50 and p95 over a direct
   `encode_queries([q])` (HTTP + JSON + queueing overhead). Clients keep their connection open,
   as a backend's connection pool does.
3. With the local ES-API server (``--with-search``): `POST /indices/{index}/search` (hybrid)
   over `Searcher.search` on the same queries, interleaved; then `--load-seconds` of
   `--clients` clients mixing /embed and search while an indexing run writes to another index:
   errors other than deliberate 429s (goal 0), the 429s, and the service's RSS over time.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import multiprocessing
import os
import statistics
import threading
import time
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import uvicorn

from benchmarks.common import SCIFACT, rss_mib
from benchmarks.machine import machine
from es_semantic import Encoder
from es_semantic.demo.server import free_loopback_port
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


def load_elsewhere(url: str, queries: list[str], clients: int,
                   seconds: float) -> tuple[float, list[float]]:  # fmt: skip
    """``load`` from a process of its own (spawned: no copy of the model's threads)."""
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(1, mp_context=context) as pool:
        return pool.submit(load, url, queries, clients, seconds).result()


def ceiling(encoder: Encoder, queries: list[str], size: int, rounds: int = 20) -> dict[str, float]:
    """The encoder alone: ``size`` queries as one batch against ``size`` one-query calls,
    interleaved (texts/s each): the most any batching service can gain on this machine."""
    batched = single = 0.0
    for r in range(rounds):
        group = [queries[(r * size + i) % len(queries)] for i in range(size)]
        t0 = time.perf_counter()
        encoder.encode_queries(group)
        batched += time.perf_counter() - t0
        t0 = time.perf_counter()
        for query in group:
            encoder.encode_queries([query])
        single += time.perf_counter() - t0
    texts = rounds * size
    return {"batched_per_s": texts / batched, "single_per_s": texts / single,
            "ratio": single / batched}  # fmt: skip


def pass_figures(app: Any, seconds: float) -> dict[str, float]:
    """From the service's metrics: texts per forward pass, encoder time per text, and the share
    of the ``seconds`` of load the encoder was busy (near 100%: the model is what holds it)."""
    registry = app.state.service.metrics.registry
    passes = registry.get_sample_value("es_semantic_batch_texts_count") or 0.0
    texts = registry.get_sample_value("es_semantic_batch_texts_sum") or 0.0
    busy = registry.get_sample_value("es_semantic_stage_seconds_sum", {"stage": "encode"}) or 0.0
    return {"texts_per_pass": texts / passes if passes else 0.0, "encoder_busy": busy / seconds,
            "encode_ms_per_text": 1000 * busy / texts if texts else 0.0}  # fmt: skip


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--seconds", type=float, default=15)
    parser.add_argument(
        "--with-search",
        action="store_true",
        help="also search overhead and the mixed load (local ES-API server)",
    )
    parser.add_argument("--docs", type=int, default=1000)
    parser.add_argument("--load-seconds", type=float, default=60)
    parser.add_argument(
        "--in-process-clients",
        action="store_true",
        help="client threads in the service's process (its interpreter lock)",
    )
    parser.add_argument("--json", action="store_true", help="figures and the machine as JSON")
    args = parser.parse_args()
    lines = (SCIFACT / "queries.jsonl").read_text(encoding="utf-8").splitlines()
    queries = [json.loads(line)["text"] for line in lines]
    encoder = Encoder()
    encoder.encode_queries(queries[:8])  # warm
    figures: dict[str, Any] = {"encoder": encoder.config.ran(), "clients": args.clients,
                               "load_average": os.getloadavg(), "machine": machine()}  # fmt: skip
    top = figures["ceiling"] = ceiling(encoder, queries, args.clients)
    print(f"{encoder.config.ran()}; load average {os.getloadavg()[0]:.2f}")
    print(f"ceiling, the encoder alone: {args.clients} queries as one batch "
          f"{top['batched_per_s']:.0f}/s, one at a time {top['single_per_s']:.0f}/s: "
          f"{top['ratio']:.2f}x")  # fmt: skip
    rows = {}
    run_clients = load if args.in_process_clients else load_elsewhere
    for name, batching in (("batching", True), ("no batching", False)):
        config = ServiceConfig(batching=batching, max_queue=4096)
        app = create_app(encoder, config=config)
        with running(app) as url:
            post(f"{url}/embed", {"inputs": "warm up"})
            rate, latencies = run_clients(url, queries, args.clients, args.seconds)
            passes = pass_figures(app, args.seconds)
        rows[name] = {"req_per_s": rate, "p50_ms": pct(latencies, 0.5),
                      "p95_ms": pct(latencies, 0.95), **passes}  # fmt: skip
    where = "in the service's process" if args.in_process_clients else "in another process"
    print(f"{args.clients} clients ({where}), single short queries to /embed for "
          f"{args.seconds:.0f}s each")  # fmt: skip
    print(f"{'':<12} {'req/s':>8} {'p50 ms':>8} {'p95 ms':>8} {'texts/pass':>10} "
          f"{'encoder busy':>12} {'encode ms/text':>14}")  # fmt: skip
    for name, r in rows.items():
        print(f"{name:<12} {r['req_per_s']:>8.1f} {r['p50_ms']:>8.1f} {r['p95_ms']:>8.1f} "
              f"{r['texts_per_pass']:>10.1f} {100 * r['encoder_busy']:>11.0f}% "
              f"{r['encode_ms_per_text']:>14.2f}")  # fmt: skip
    ratio = rows["batching"]["req_per_s"] / rows["no batching"]["req_per_s"]
    figures.update(rows=rows, ratio=ratio)
    print(f"throughput ratio batching / no batching: {ratio:.2f}x "
          f"(the encoder's own ceiling {top['ratio']:.2f}x)")  # fmt: skip
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
    print(f"one query at a time: direct encode p50 {pct(direct, 0.5):.2f} ms "
          f"(p95 {pct(direct, 0.95):.2f}), via /embed p50 {pct(served, 0.5):.2f} ms "
          f"(p95 {pct(served, 0.95):.2f}): overhead {overhead:.2f} ms at p50")  # fmt: skip
    figures["one_client"] = {
        "direct_p50_ms": pct(direct, 0.5), "direct_p95_ms": pct(direct, 0.95),
        "served_p50_ms": pct(served, 0.5), "served_p95_ms": pct(served, 0.95),
        "overhead_p50_ms": overhead,
    }  # fmt: skip
    figures["load_average_after"] = os.getloadavg()
    if args.json:
        print(json.dumps(figures, indent=2))
    if args.with_search:
        search_part(encoder, queries, args)


def search_part(encoder: Encoder, queries: list[str], args: argparse.Namespace) -> None:
    from benchmarks.common import scifact_passages
    from es_semantic import Indexer, Searcher
    from es_semantic.demo.server import resolve_server
    from es_semantic.elastic.client import make_client

    with resolve_server() as server:
        es = make_client(server.config)
        docs = [{"id": str(i), "text": t} for i, t in enumerate(scifact_passages(args.docs))]
        Indexer(es, "bench-serve", encoder, chunking="none").index(docs)
        searcher = Searcher(es, "bench-serve", encoder)
        config = ServiceConfig(indices=("bench-serve", "bench-serve-writes"), max_queue=64)
        with running(create_app(encoder, config=config, es_config=server.config)) as url:
            connection = KeepAlive(url)
            direct, served = [], []
            for i in range(100):  # interleaved
                query = queries[i % len(queries)]
                t0 = time.perf_counter()
                searcher.search(query, mode="hybrid", k=10)
                direct.append(time.perf_counter() - t0)
                t0 = time.perf_counter()
                connection.post("/indices/bench-serve/search", {"query": query, "k": 10})
                served.append(time.perf_counter() - t0)
            gap = (statistics.median(served) - statistics.median(direct)) * 1000
            print(f"hybrid search: Searcher.search p50 {pct(direct, 0.5):.2f} ms, via "
                  f"/indices/{{index}}/search p50 {pct(served, 0.5):.2f} ms: overhead "
                  f"{gap:.2f} ms ({len(docs)} docs on the local emulator)")  # fmt: skip
            mixed_load(url, es, encoder, queries, args)


def mixed_load(url: str, es: object, encoder: Encoder, queries: list[str],
               args: argparse.Namespace) -> None:  # fmt: skip
    """Clients mixing /embed and search while an indexing run writes (the service runs in this
    process, so its RSS is this process's)."""
    from benchmarks.common import scifact_passages
    from es_semantic import Indexer

    counts = {"ok": 0, "429": 0}
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.perf_counter() + args.load_seconds
    rss = [rss_mib()]

    def client(n: int) -> None:
        connection = KeepAlive(url)
        i = n
        while time.perf_counter() < stop:
            query = queries[i % len(queries)]
            path, body = (("/embed", {"inputs": query}) if i % 2 else
                          ("/indices/bench-serve/search", {"query": query, "k": 10}))  # fmt: skip
            try:
                connection.post(path, body)
                outcome = "ok"
            except RuntimeError as exc:
                outcome = "429" if "429" in str(exc) else f"{path}: {exc}"
            except OSError as exc:
                outcome, connection = f"{path}: {type(exc).__name__}", KeepAlive(url)
            with lock:
                if outcome in counts:
                    counts[outcome] += 1
                else:
                    errors.append(outcome)
            i += args.clients

    def index_more() -> None:
        texts = scifact_passages(5183)
        docs = [{"id": str(i), "text": t} for i, t in enumerate(texts)]
        Indexer(es, "bench-serve-writes", encoder, chunking="none", batch_size=64).index(
            d for d in docs if time.perf_counter() < stop
        )

    writer = threading.Thread(target=index_more, daemon=True)
    threads = [threading.Thread(target=client, args=(n,)) for n in range(args.clients)]
    writer.start()
    for t in threads:
        t.start()
    while any(t.is_alive() for t in threads):
        time.sleep(5)
        rss.append(rss_mib())
    writer.join(timeout=120)
    print(f"mixed load: {args.clients} clients, /embed and hybrid search alternating for "
          f"{args.load_seconds:.0f}s while an indexing run writes: {counts['ok']} answered, "
          f"{counts['429']} deliberate 429s, {len(errors)} other errors (goal 0)"
          f"{': ' + errors[0] if errors else ''}")  # fmt: skip
    print("  service RSS MiB every 5 s: " + " -> ".join(f"{x:.0f}" for x in rss))


if __name__ == "__main__":
    main()
