"""Input files as a Ray dataset, read by the local engine's readers (`ray[data]` extra).

A Ray Data file datasource (the documented way to read a custom file type): Ray lists the
paths on any filesystem it is given (local, s3://, gs://, hdfs://) and runs one read task per
file; each task streams the file through ``indexing.readers``, so every record keeps its
``file:line`` (``file:row N`` for Parquet) origin and a bad line becomes a dead letter, not a
failed read. A task stops reading once the run has stopped (the cluster failed, Ctrl-C), before
each file and after each block: each row it has handed on is accounted for downstream, the
rest are never read (a file smaller than a block, as shards of a corpus often are, would
otherwise be read to its end).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import ray
from ray.data.datasource import FileBasedDatasource

from es_semantic.distributed.rows import RECORD_COLUMNS, record_to_row
from es_semantic.indexing.readers import FieldSpec, InputFormat, Record, read_stream

ROWS_PER_BLOCK = 1000
RECORD_SCHEMA = pa.schema([(name, pa.string()) for name in RECORD_COLUMNS])


class RecordFiles(FileBasedDatasource):
    """Files of one format (``text_unit="file"``: each text file is one document)."""

    def __init__(
        self, paths: str | list[str], fmt: InputFormat, spec: FieldSpec, *,
        text_unit: str = "line", state: Any = None, **file_options: Any,
    ) -> None:  # fmt: skip
        super().__init__(paths, **file_options)
        self.fmt, self.spec, self.text_unit, self.state = fmt, spec, text_unit, state

    def _open_input_source(self, filesystem: Any, path: str, **open_args: Any) -> Any:
        if self.fmt == "parquet":  # Parquet needs random access, not a stream
            return filesystem.open_input_file(path)
        return super()._open_input_source(filesystem, path, **open_args)

    def _read_stream(self, f: Any, path: str) -> Iterator[pa.Table]:
        if self._stopped():  # a file begun after the stop is not read (small shards: most)
            return
        rows: list[dict[str, str | None]] = []
        for record in self._records(f, path):
            rows.append(record_to_row(record))
            if len(rows) >= ROWS_PER_BLOCK:
                yield pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)
                rows = []
                if self._stopped():
                    return
        if rows:
            yield pa.Table.from_pylist(rows, schema=RECORD_SCHEMA)

    def _stopped(self) -> bool:
        return self.state is not None and ray.get(self.state.not_sent.remote()) is not None

    def _records(self, f: Any, path: str) -> Iterator[Record]:
        if self.fmt != "parquet":  # Parquet needs random access, the rest a buffered stream
            f = io.BufferedReader(_ArrowStream(f), buffer_size=1 << 20)
        yield from read_stream(f, path, self.fmt, self.spec, self.text_unit)


class _ArrowStream(io.RawIOBase):
    """An Arrow input stream as a Python raw stream (Arrow's own has no ``readline``)."""

    def __init__(self, source: Any) -> None:
        self._source = source

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._source.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)
