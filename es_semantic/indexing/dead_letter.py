"""Dead-letter sink: every failed document goes to a JSONL file (and the report)."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from es_semantic.redact import redact
from es_semantic.types import FailedDocument, IndexReport

MAX_FAILURES_IN_REPORT = 1000
PRIVATE_MODE = 0o600


class DeadLetterSink:
    """Thread-safe: counts a failure in the report and appends it to ``path``.

    The file holds this run's failures only: a previous run's file is removed when the run
    starts (a clean run leaves none), and it is created at the first failure, readable by its
    owner only (it holds document text). Reasons are stripped of ``secrets``."""

    def __init__(
        self, report: IndexReport, path: str | Path | None = None, secrets: Iterable[str] = ()
    ) -> None:
        self.report = report
        self.path = Path(path) if path else None
        self.secrets = list(secrets)
        self._file: IO[str] | None = None
        self._lock = threading.Lock()
        if self.path is not None:
            self.path.unlink(missing_ok=True)

    def add(self, source: str, reason: str, document: Any) -> None:
        failure = FailedDocument(source, redact(reason, self.secrets), _jsonable(document))
        with self._lock:
            self.report.failed += 1
            if len(self.report.failures) < MAX_FAILURES_IN_REPORT:
                self.report.failures.append(failure)
            if self.path is not None:
                if self._file is None:
                    self._file = _open_private(self.path)
                    self.report.dead_letter = str(self.path)
                self._file.write(json.dumps(failure.to_json(), ensure_ascii=False) + "\n")
                self._file.flush()

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


def _open_private(path: Path) -> IO[str]:
    """Create (or truncate) ``path`` with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, PRIVATE_MODE)
    os.fchmod(fd, PRIVATE_MODE)  # an existing file keeps its mode through O_CREAT
    return os.fdopen(fd, "w", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
