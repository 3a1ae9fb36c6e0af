"""Evaluate an index on your own queries, then switch it to a new model only if it is no worse.

    python evaluate_and_migrate.py docs-live --queries queries.jsonl --qrels qrels.tsv \\
        --old-model /models/all-MiniLM-L6-v2 --new-model /models/tuned --max-drop 0.01

1. Scores the index behind the alias on your queries (nDCG@10, Recall@100, MRR@10, MAP@100
   and latency for keyword, kNN and hybrid), as ``es-semantic eval`` does.
2. Migrates the alias to an index built with the new model (copied from the stored text,
   no re-read of your sources), behind an eval gate: the alias moves only when the new index
   scores at least the old one minus ``--max-drop`` (``--gate-mode``, nDCG@10). Searches keep
   going to the old index until one atomic alias swap; writes are blocked for a short catch-up.

Queries: JSONL (``_id``, ``text``) or TSV ``id<TAB>text``; qrels: BEIR TSV or TREC. Exit 0: the
alias moved (or was already there); 1: refused by the gate or stopped (the alias is unchanged,
the new index kept for a look or a re-run, which resumes); 2: bad input.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from es_semantic import (
    ConfigError,
    Encoder,
    ESConfig,
    EsSemanticError,
    EvalGate,
    InputError,
    MigrationRefused,
    Searcher,
    migrate,
)
from es_semantic.evaluation.data import load_qrels, load_queries
from es_semantic.evaluation.runner import build_modes, run_legs, summarise

MODES = ("keyword", "knn", "hybrid")


def evaluate(
    es: Elasticsearch, index: str, encoder: Encoder, queries: dict[str, str], qrels: Any
) -> dict[str, dict[str, float]]:
    """Every mode's metrics; each leg is queried once per query, hybrid fused from them."""
    searcher = Searcher(es, index, encoder)
    legs = run_legs(searcher, queries)
    runs = build_modes(MODES, legs, queries, searcher=searcher)
    return {mode: summarise(run, qrels) for mode, run in runs.items()}


def print_table(table: dict[str, dict[str, float]]) -> None:
    metrics = list(next(iter(table.values())))
    print(f"{'mode':<10}" + "".join(f"{m:>12}" for m in metrics))
    for mode, scores in table.items():
        print(f"{mode:<10}" + "".join(f"{scores[m]:>12.4f}" for m in metrics))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("alias")
    parser.add_argument("--queries", required=True)
    parser.add_argument("--qrels", required=True)
    parser.add_argument("--new-model", required=True)
    parser.add_argument(
        "--old-model",
        default=os.environ.get("ES_SEMANTIC_MODEL"),
        help="the model the index was built with [ES_SEMANTIC_MODEL, else the packaged MiniLM]",
    )
    parser.add_argument("--max-drop", type=float, default=0.01)
    parser.add_argument("--gate-mode", choices=MODES, default="knn")
    parser.add_argument("--report", type=Path, help="write the scores and the migration here")
    args = parser.parse_args(argv)
    es = Elasticsearch(**ESConfig.from_env().client_kwargs())
    report: dict[str, Any] = {}
    try:
        queries, qrels = load_queries(args.queries), load_qrels(args.qrels)
        queries = {qid: text for qid, text in queries.items() if qid in qrels}
        if not queries:
            raise InputError(f"{args.queries} and {args.qrels} share no query id")
        old = Encoder(args.old_model)
        report["before"] = evaluate(es, args.alias, old, queries, qrels)
        print_table(report["before"])
        gate = EvalGate(
            queries, qrels, old_encoder=old, mode=args.gate_mode, max_drop=args.max_drop
        )
        done = migrate(es, args.alias, Encoder(args.new_model), gate=gate)
        report["migration"] = done.to_json()
        print(done.gate.describe() if done.gate else f"{args.alias} already on the new model")
        print(f"{args.alias} -> {done.new_index} (old index {done.old_index} kept, read-only)")
        return 0
    except MigrationRefused as exc:
        report["refused"] = str(exc)
        print(f"refused: {exc}", file=sys.stderr)
        return 1
    except (ConfigError, InputError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except EsSemanticError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        es.close()
        if args.report and report:
            args.report.write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    sys.exit(main())
