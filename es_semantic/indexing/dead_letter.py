"""Files that keep what a run did not index: dead letters (failed documents) and the
near-duplicates ``--dedupe skip`` left out. Both are private JSONL files (mode 0600: they hold
document text), created at their first line, and never deleted by a later run."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import IO, Any

from es_semantic.redact import redact
from es_semantic.types import FailedDocument, IndexReport

MAX_FAILURES_IN_REPORT = 1000
PRIVATE_MODE = 0o600


class PrivateJsonl:
    """Thread-safe JSONL lines appended to ``path``, which is created at the first line.

    A file left at ``path`` by an earlier run is moved aside (``NAME.YYYYmmddTHHMMSS.jsonl``,
    from its modification time) when the run starts: for stdin input it may be the only copy
    of the documents it holds. ``moved_to`` says where it went."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.moved_to: Path | None = None
        self._file: IO[str] | None = None
        self._opened = False
        self._lock = threading.Lock()
        if self.path is not None and self.path.exists():
            self.moved_to = _aside(self.path)
            self.path.rename(self.moved_to)

    def write(self, record: dict[str, Any]) -> bool:
        """Append one line; False when there is no file to write to."""
        if self.path is None:
            return False
        with self._lock:
            if self._file is None:  # truncated at the run's first line, appended to after
                self._file = _open_private(self.path, append=self._opened)
                self._opened = True
            self._file.write(json.dumps(record, ensure_ascii=False) + "\n")
            self._file.flush()
        return True

    def close(self) -> None:
        with self._lock:
            if self._file is not None:
                self._file.close()
                self._file = None


class DeadLetterSink:
    """Thread-safe: counts a failure in the report (listing the first ``keep``) and appends it
    to ``path``.

    The file holds this run's failures; an earlier run's file is kept beside it (see
    :class:`PrivateJsonl`). Reasons are stripped of ``secrets``."""

    def __init__(
        self,
        report: IndexReport,
        path: str | Path | None = None,
        secrets: Iterable[str] = (),
        *,
        keep: int | None = MAX_FAILURES_IN_REPORT,
    ) -> None:
        self.report, self.keep = report, keep  # failures listed in the report (None: all)
        self.secrets = list(secrets)
        self._file = PrivateJsonl(path)
        self.path = self._file.path
        self._lock = threading.Lock()

    @property
    def moved_to(self) -> Path | None:
        """Where an earlier run's dead-letter file was moved to, if there was one."""
        return self._file.moved_to

    def add(self, source: str, reason: str, document: Any) -> None:
        failure = FailedDocument(source, redact(reason, self.secrets), _jsonable(document))
        with self._lock:
            self.report.failed += 1
            if self.keep is None or len(self.report.failures) < self.keep:
                self.report.failures.append(failure)
            if self._file.write(failure.to_json()):
                self.report.dead_letter = str(self.path)

    def close(self) -> None:
        self._file.close()


def _aside(path: Path) -> Path:
    stamp = time.strftime("%Y%m%dT%H%M%S", time.localtime(path.stat().st_mtime))
    stem = path.name.removesuffix(".jsonl")
    for n in range(1000):
        candidate = path.with_name(f"{stem}.{stamp}{f'-{n}' if n else ''}.jsonl")
        if not candidate.exists():
            return candidate
    raise FileExistsError(f"no free name beside {path} to keep the earlier run's file")


def _open_private(path: Path, *, append: bool = False) -> IO[str]:
    """Create (or truncate, or append to) ``path`` with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = os.O_APPEND if append else os.O_TRUNC
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | mode, PRIVATE_MODE)
    os.fchmod(fd, PRIVATE_MODE)  # an existing file keeps its mode through O_CREAT
    return os.fdopen(fd, "w", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
    return value
