"""Retrieval quality on SciFact (BEIR test split) with the packaged all-MiniLM-L6-v2.

    python benchmarks/quality.py [--beir ../shared/data/scifact] [--es-url URL]

Indexes the corpus (English analysis on title + text) through the normal indexer, queries the
keyword and kNN legs once per query, fuses on the client for the hybrid modes, and prints the
nDCG@10 / Recall@100 / MRR@10 / MAP@100 table with the targets. Slow on the local server
(~2 s per keyword query at this size): run it in the background.
"""

from __future__ import annotations

import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import SCIFACT
from es_semantic.cli import cli
from es_semantic.demo.server import resolve_server

TARGETS = (
    "targets nDCG@10: keyword >= 0.655, knn 0.645 +- 0.015, best hybrid >= 0.69 and above both"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--beir", default=str(SCIFACT))
    parser.add_argument("--modes", default="keyword,knn,hybrid,weighted")
    parser.add_argument("--extra", nargs=argparse.REMAINDER, default=[], help="more eval options")
    args = parser.parse_args()
    print(TARGETS, flush=True)
    with resolve_server() as server:
        print(f"server: {server.description}", flush=True)
        argv = [
            "eval",
            "--beir",
            args.beir,
            "--modes",
            args.modes,
            "--tune",
            "--quiet",
            "--es-url",
            server.config.url or "",
            *args.extra,
        ]
        code = cli.main(argv, prog_name="es-semantic", standalone_mode=False)
    sys.exit(code or 0)


if __name__ == "__main__":
    main()
