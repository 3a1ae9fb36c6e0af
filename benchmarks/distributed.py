"""The Ray engine against the local indexer on the same SciFact documents, in one run.

    python -m benchmarks.distributed [--docs 2000] [--device cpu|cuda] [--workers 1,2]

Each contender indexes the same JSONL file into a fresh index on the same server (ES_URL, or
a local noida-db): the local ``Indexer``, then the Ray engine with each worker count (a local
Ray started here with the machine's cores as its CPUs, never more: each worker asks for its
share of what the read tasks leave). Prints wall time, docs/s, the ratio to
the local engine, whether the reports are equal, and where the time goes (encoding summed over
actors; the rest is reading, bulk, serialisation and Ray's own work). On CUDA each actor gets
the GPU (``--gpus-per-worker``, 1 for one worker, shared fractions for more). Ends with the
scaling model on paper, from the measured per-actor rate.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.common import SCIFACT
from es_semantic import Encoder, Indexer
from es_semantic.demo.server import resolve_server
from es_semantic.elastic.client import make_client
from es_semantic.indexing.readers import read_path


def write_corpus(n: int, folder: Path) -> Path:
    path = folder / "scifact.jsonl"
    with open(SCIFACT / "corpus.jsonl", encoding="utf-8") as src, path.open("w") as out:
        for number, line in enumerate(src):
            if number >= n:
                break
            out.write(line)
    return path


def counts(report: Any) -> tuple[int, int, int, int]:
    return report.indexed, report.skipped, report.failed, report.encoded


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=2000)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--workers", default="1,2")
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--model", default=None, help="model folder [the packaged MiniLM]")
    args = parser.parse_args()
    import ray

    from es_semantic.distributed import index_files
    from es_semantic.distributed.engine import machine_cpus
    from es_semantic.indexing.options import IndexOptions

    cores = machine_cpus()  # what this process may run on (affinity, cgroup quota)
    gpu = args.device.startswith("cuda")
    folder = Path(tempfile.mkdtemp(prefix="es-semantic-distributed-"))
    corpus = write_corpus(args.docs, folder)
    options: dict[str, Any] = {"batch_size": args.batch_size, "id_field": "_id"}
    with resolve_server() as server:
        es = make_client(server.config)
        print(f"{args.docs} SciFact documents, {cores} cores, device {args.device}, "
              f"server: {server.description}")  # fmt: skip
        rows = []
        started = time.perf_counter()
        encoder = Encoder(args.model, device=args.device)
        load_s = time.perf_counter() - started  # the local run's clock starts after this
        started = time.perf_counter()
        local = Indexer(es, "bench-local", encoder, **options)
        local_report = local.index(read_path(str(corpus), None, local.field_spec()))
        local_s = time.perf_counter() - started
        rows.append(("local", local_s, local_report))
        del encoder
        # Ray: the machine's cores (and GPU) as its resources, never more than it has; started
        # before the clock runs
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        per_actor: dict[int, float] = {}
        for workers in [int(w) for w in args.workers.split(",")]:
            started = time.perf_counter()
            report = index_files(
                [str(corpus)], server.config, f"bench-ray-{workers}", args.model,
                encoder_options={"device": args.device},
                workers=workers, cpus_per_worker=_cpus_per_worker(cores, workers, gpu),
                gpus_per_worker=(1.0 / workers) if gpu else 0.0,
                options=IndexOptions.of(**options),
            )  # fmt: skip
            seconds = time.perf_counter() - started
            rows.append((f"ray x{workers}", seconds, report))
            per_actor[workers] = report.encoded / seconds / workers
        ray.shutdown()
        print(f"{'engine':10} {'seconds':>8} {'docs/s':>8} {'vs local':>9} {'encode s':>9} "
              f"{'other s':>8}  report (indexed, skipped, failed, encoded)")  # fmt: skip
        for name, seconds, report in rows:  # other: reading, bulk, start-up, Ray's own work
            print(f"{name:10} {seconds:8.1f} {args.docs / seconds:8.1f} "
                  f"{seconds / local_s:8.2f}x {report.encode_seconds:9.1f} "
                  f"{seconds - report.encode_seconds:8.1f}  {counts(report)}"
                  f"{'' if counts(report) == counts(local_report) else ' DIFFERS'}")  # fmt: skip
        print("ratio = Ray wall time / local wall time, actor start-up and its model load "
              f"included (goal at 1 worker: <= 1.20); loading the model here took {load_s:.1f}s "
              "(not in the local time): with it, the local run would be "
              f"{local_s + load_s:.1f}s")  # fmt: skip
        rate = max(per_actor.values()) if per_actor else 0.0
        scaling_model(rate, gpu)
        for index in ["bench-local", *(f"bench-ray-{w}" for w in args.workers.split(","))]:
            es.options(ignore_status=404).indices.delete(index=index)
    print(json.dumps({"docs": args.docs, "local_seconds": round(local_s, 2)}))


def _cpus_per_worker(cores: int, workers: int, gpu: bool) -> float:
    """Each worker's share of the cores the read tasks leave (Ray runs them beside the
    actors): the pool then fits the machine as it is, not one Ray was told is bigger."""
    from es_semantic.distributed.engine import READ_CPUS

    if gpu:
        return 1.0
    return max(0.25, (cores - READ_CPUS) / workers)


def scaling_model(rate: float, gpu: bool) -> None:
    """4 nodes x 4 GPUs feeding a 3-node cluster, from the measured per-actor encode rate."""
    actors = 16
    encode = rate * actors
    # Elasticsearch's side, stated as an assumption (no 3-node cluster here): ~4,000 docs/s
    # per data node for 384-dim HNSW int8 vectors with one replica (merges included).
    es_side = 3 * 4000
    print(f"scaling on paper: one actor indexes {rate:,.0f} docs/s "
          f"({'GPU' if gpu else 'CPU'}); 16 actors -> {encode:,.0f} docs/s; a 3-node cluster "
          f"at ~4,000 docs/s per node (assumed: 384-dim HNSW, 1 replica) -> {es_side:,} docs/s: "
          f"{'Elasticsearch' if encode > es_side else 'encoding'} is the bottleneck")  # fmt: skip


if __name__ == "__main__":
    main()
