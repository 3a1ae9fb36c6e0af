"""A nightly bulk job for cron: index the night's export, keep every failure, write a report.

    python nightly_job.py INDEX PATH... --report report.json [--dead-letter failed.jsonl]

- Resumable: a re-run (after a crash, a Ctrl-C or SIGTERM, a cluster outage) skips every
  document already indexed unchanged, without encoding it (the index stores each document's
  content hash).
- Dead letters: every record that could not be indexed (a bad line, an empty text, a document
  the cluster refused, the records in hand when the run stopped) is written whole to the
  dead-letter JSONL file, with its origin (``file:line``) and the reason.
- Exit codes, for cron and your alerting: 0 all indexed or skipped; 1 documents failed or the
  run stopped (see the dead letters and the report); 2 bad usage or input; 130 interrupted.
- The report (JSON) is written in every case, before the exit: status, counts, timings, the
  dead-letter file and the first failures.

Connection from the environment (ES_URL, ES_API_KEY, ...); model from ES_SEMANTIC_MODEL
(default: the packaged all-MiniLM-L6-v2).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from elasticsearch import Elasticsearch

from es_semantic import (
    ConfigError,
    Encoder,
    ESConfig,
    EsSemanticError,
    Indexer,
    IndexingError,
    IndexReport,
    InputError,
)
from es_semantic.errors import IndexingInterrupted
from es_semantic.indexing.readers import read_path


def write_report(path: Path, status: str, report: IndexReport | None, error: str | None) -> None:
    """The report, written whole or not at all (a reader never sees half a file)."""
    data: dict[str, Any] = {
        "status": status,
        "finished": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "error": error,
        **(report.to_json() if report is not None else {}),
    }
    partial = path.with_suffix(path.suffix + ".partial")
    partial.write_text(json.dumps(data, indent=2) + "\n")
    partial.replace(path)


def run(args: argparse.Namespace) -> tuple[int, str, IndexReport | None, str | None]:
    """Index every path; (exit code, status, report, error line)."""
    es = Elasticsearch(**ESConfig.from_env().client_kwargs())
    try:
        indexer = Indexer(
            es,
            args.index,
            Encoder(os.environ.get("ES_SEMANTIC_MODEL")),
            metadata_fields=args.metadata_field,
            dead_letter=args.dead_letter,
        )
        spec = indexer.field_spec()  # creates the index, or checks its contract

        def records() -> Iterator[Any]:
            for path in args.paths:
                yield from read_path(path, None, spec)

        report = indexer.index(records())
    except IndexingInterrupted as exc:
        return 130, "interrupted", exc.report, "interrupted: run the job again to resume"
    except IndexingError as exc:  # the run stopped; every record read is in the report
        return 1, "stopped", exc.report, f"{exc} (run the job again to resume)"
    except (ConfigError, InputError) as exc:
        return 2, "refused", None, str(exc)
    except EsSemanticError as exc:  # cluster unreachable, contract mismatch, model error
        return 1, "failed", None, str(exc)
    finally:
        es.close()
    if report.failed:
        line = f"{report.failed} document(s) failed: see {report.dead_letter}"
        return 1, "failed", report, line
    return 0, "ok", report, None


def stop_on_sigterm(signum: int, frame: object) -> None:
    """SIGTERM (kill, docker stop, a Kubernetes shutdown) stops the run as Ctrl-C does: the
    records in hand become dead letters and the report is still written."""
    raise KeyboardInterrupt(f"signal {signum}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("index")
    parser.add_argument("paths", nargs="+", metavar="PATH")
    parser.add_argument("--report", type=Path, required=True, help="JSON report file")
    parser.add_argument("--dead-letter", help="JSONL of failed documents [INDEX.dead.jsonl]")
    parser.add_argument("--metadata-field", action="append", default=[], help="NAME or NAME:TYPE")
    args = parser.parse_args(argv)
    missing = [p for p in args.paths if not Path(p).is_file()]
    if missing:
        parser.error(f"no such file: {', '.join(missing)} (pass the export's path)")  # exit 2
    args.dead_letter = args.dead_letter or f"{args.index}.dead.jsonl"
    args.metadata_field = dict(
        f.split(":", 1) if ":" in f else (f, "keyword") for f in args.metadata_field
    )
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    started = time.monotonic()
    code, status, report, error = run(args)
    write_report(args.report, status, report, error)
    minutes = (time.monotonic() - started) / 60
    if error:
        print(f"error: {error}", file=sys.stderr)
    if report is not None:
        print(
            f"{status}: {report.indexed} indexed, {report.skipped} unchanged, "
            f"{report.failed} failed in {minutes:.1f} min"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
