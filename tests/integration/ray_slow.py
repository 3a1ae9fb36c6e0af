"""Files that take time to read, as a large corpus on a slow filesystem does: each record
waits a little. Pickled by value (the workers cannot import ``tests``)."""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import ray

from es_semantic.distributed.datasource import RecordFiles
from es_semantic.distributed.engine import READ_CPUS
from es_semantic.indexing.readers import FieldSpec, InputFormat, Record, resolve_format


class SlowRecordFiles(RecordFiles):
    def _records(self, f: Any, path: str) -> Iterator[Record]:
        for record in RecordFiles._records(self, f, path):  # by value: no bare super()
            time.sleep(0.15)
            yield record


def read_files(
    paths: Sequence[str], fmt: InputFormat | None, spec: FieldSpec, text_unit: str, state: Any
) -> Any:
    """``engine._read_files`` for files of one format, read slowly, one read task per file
    (Ray hands a read task's blocks on when it ends)."""
    resolved = [resolve_format(path, fmt, spec) for path in paths]
    source = SlowRecordFiles([file for file, _, _ in resolved], resolved[0][1], resolved[0][2],
                             text_unit=text_unit, state=state)  # fmt: skip
    return ray.data.read_datasource(source, num_cpus=READ_CPUS, override_num_blocks=len(paths))
