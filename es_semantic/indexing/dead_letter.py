"""Dead-letter sink: every failed document goes to a JSONL file (and the report)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import IO, Any

from es_semantic.types import FailedDocument, IndexReport

MAX_FAILURES_IN_REPORT = 1000


class DeadLetterSink:
    """Thread-safe: counts a failure in the report and appends it to ``path`` (opened lazily,
    truncated at the first failure of a run, so the file holds this run's failures only)."""

    def __init__(self, report: IndexReport, path: str | Path | None = None) -> None:
        self.report = report
        self.path = Path(path) if path else None
        self._file: IO[str] | None = None
        self._lock = threading.Lock()

    def add(self, source: str, reason: str, document: Any) -> None:
        failure = FailedDocument(source, reason, _jsonable(document))
        with self._lock:
            self.report.failed += 1
            if len(self.report.failures) < MAX_FAILURES_IN_REPORT:
                self.report.failures.append(failure)
            if self.path is not None:
                if self._file is None:
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._file = open(self.path, "w", encoding="utf-8")  # noqa: SIM115
                    self.report.dead_letter = str(self.path)
                self._file.write(json.dumps(failure.to_json(), ensure_ascii=False) + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
