"""CLI start-up: wall time of `es-semantic --help`, `info --help` and `info INDEX`, each beside
the same process importing what the CLI imported before it loaded lazily (torch, transformers,
the Elasticsearch client and every command module), in one run, alternating.

    python -m benchmarks.startup [--runs 7]

Whole-process wall times (median of the runs) and the ratio lazy/eager per command. `info INDEX`
runs against a local ES-API server started here (its own time is part of both sides).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from es_semantic.config import EncoderConfig
from es_semantic.demo.server import noida_server
from es_semantic.elastic.client import make_client
from es_semantic.indexing.admin import create_index
from es_semantic.schema.contract import IndexContract

# What `import es_semantic.cli` loaded before the lazy group and the lazy package root.
EAGER_IMPORTS = (
    "import torch, transformers, elasticsearch; "
    "import es_semantic.encoding.encoder, es_semantic.encoding.reranker; "
    "import es_semantic.cli.indexing_cmds, es_semantic.cli.index_cmd, es_semantic.cli.search_cmd, "
    "es_semantic.cli.eval_cmd, es_semantic.cli.migrate_cmd, es_semantic.cli.quickstart_cmd; "
)


def command(args: list[str], eager: bool) -> list[str]:
    prefix = EAGER_IMPORTS if eager else ""
    code = f"{prefix}import sys; from es_semantic.cli import main; sys.argv = {['es-semantic', *args]!r}; main()"
    return [sys.executable, "-c", code]


def wall(cmd: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=False)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    with noida_server() as server:
        es = make_client(server.config)
        config = EncoderConfig("all-MiniLM-L6-v2", "-", "f" * 16, "mean", True, 256, "", "", 384)
        create_index(es, "bench-startup", IndexContract.from_encoder(config))
        es.close()
        url = server.config.url or ""
        cases = {
            "--help": ["--help"],
            "info --help": ["info", "--help"],
            "info INDEX": ["info", "bench-startup", "--es-url", url],
        }
        print(f"{'command':<14} {'lazy s':>8} {'eager s':>8} {'lazy/eager':>10}")
        for name, argv in cases.items():
            lazy: list[float] = []
            eager: list[float] = []
            wall(command(argv, False))  # warm the file cache
            for i in range(args.runs):
                pair = [(lazy, False), (eager, True)]
                for times, is_eager in pair if i % 2 == 0 else reversed(pair):
                    times.append(wall(command(argv, is_eager)))
            lazy_s, eager_s = statistics.median(lazy), statistics.median(eager)
            print(f"{name:<14} {lazy_s:>8.3f} {eager_s:>8.3f} {lazy_s / eager_s:>10.2f}")


if __name__ == "__main__":
    main()
