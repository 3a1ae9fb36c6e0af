"""Turn files and Python records into Documents, or ReadFailures that say file:line and why.

A bad record never stops the stream: it becomes a ReadFailure and reading goes on.
"""

from __future__ import annotations

import csv
import datetime
import decimal
import io
import json
import re
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, get_args

from es_semantic.errors import InputError, MissingDependencyError
from es_semantic.types import Document, ReadFailure

InputFormat = Literal["jsonl", "csv", "tsv", "text", "beir", "parquet"]
INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)
Record = Document | ReadFailure
MAX_ID_BYTES = 512  # Elasticsearch's limit on _id
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
               ".tsv": "tsv", ".tab": "tsv", ".txt": "text", ".md": "text", ".parquet": "parquet",
               ".pq": "parquet"}  # fmt: skip
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


@dataclass(frozen=True)
class FieldSpec:
    """Which input fields are the id, the text (in order) and the metadata."""

    id_field: str | None = None
    text_fields: tuple[str, ...] = ("title", "text")
    metadata_fields: tuple[str, ...] = ()

    def id_candidates(self) -> tuple[str, ...]:
        return (self.id_field,) if self.id_field else ("id", "_id")


def to_document(record: Any, spec: FieldSpec, origin: str) -> Record:
    """One input record (a mapping) -> Document, or a ReadFailure naming what is wrong."""
    if isinstance(record, Document):
        return record
    if not isinstance(record, Mapping):
        return ReadFailure(origin, f"expected an object, got {type(record).__name__}", record)
    doc_id: str | None = None
    for key in spec.id_candidates():
        value = record.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, str | int):
            return ReadFailure(
                origin, f"id field {key!r} is {type(value).__name__}, not a string", record
            )
        doc_id = str(value)
        if not doc_id.strip() or len(doc_id.encode()) > MAX_ID_BYTES:
            return ReadFailure(
                origin, f"id {doc_id[:40]!r} is empty or over {MAX_ID_BYTES} bytes", record
            )
        break
    if spec.id_field and doc_id is None:
        return ReadFailure(origin, f"missing id field {spec.id_field!r}", record)
    texts: dict[str, str] = {}
    for name in spec.text_fields:
        value = record.get(name)
        if value is None:
            continue
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            return ReadFailure(
                origin, f"text field {name!r} is {type(value).__name__}, not text", record
            )
        texts[name] = value
    if not any(t.strip() for t in texts.values()):
        return ReadFailure(
            origin,
            f"no text in field(s) {', '.join(spec.text_fields)}: empty, whitespace or missing "
            "(choose the text fields with --text-field)",
            record,
        )
    metadata: dict[str, Any] = {}
    for name in spec.metadata_fields:
        value = record.get(name)
        if value is None:
            continue
        if not _is_scalar_or_scalar_list(value):
            return ReadFailure(
                origin, f"metadata field {name!r} must be a scalar or a list of them", record
            )
        metadata[name] = value
    return Document(doc_id, texts, metadata, origin)


def _is_scalar_or_scalar_list(value: Any) -> bool:
    scalar = (str, int, float, bool)
    return isinstance(value, scalar) or (
        isinstance(value, list) and all(isinstance(v, scalar) for v in value)
    )


def records_from_iterable(
    records: Iterable[Any], spec: FieldSpec, name: str = "input"
) -> Iterator[Record]:
    """Python dicts (or Documents) -> Records; origin is ``name#N`` (1-based)."""
    for number, record in enumerate(records, start=1):
        yield to_document(record, spec, f"{name}#{number}")


def detect_format(path: str) -> InputFormat:
    """Format from the extension (a folder with corpus.jsonl is BEIR); stdin is JSONL."""
    if path == "-":
        return "jsonl"
    p = Path(path)
    if p.is_dir():
        if (p / "corpus.jsonl").is_file():
            return "beir"
        raise InputError(f"{path} is a folder without corpus.jsonl: pass files, or --format")
    fmt = _EXTENSIONS.get(p.suffix.lower())
    if fmt is None:
        raise InputError(f"cannot tell the format of {path} from its extension: pass --format")
    return fmt  # type: ignore[return-value]


def resolve_format(
    path: str, fmt: InputFormat | None, spec: FieldSpec
) -> tuple[str, InputFormat, FieldSpec]:
    """The file to read, its format and field spec: a BEIR folder is its ``corpus.jsonl``,
    read as JSONL with ``_id`` as the id."""
    fmt = fmt or detect_format(path)
    if fmt != "beir":
        return path, fmt, spec
    spec = FieldSpec(spec.id_field or "_id", spec.text_fields, spec.metadata_fields)
    if Path(path).is_dir():
        path = str(Path(path) / "corpus.jsonl")
    return path, "jsonl", spec


def read_path(path: str, fmt: InputFormat | None, spec: FieldSpec) -> Iterator[Record]:
    """All records of one PATH (``-`` is stdin), streamed."""
    path, fmt, spec = resolve_format(path, fmt, spec)
    if path == "-":
        if fmt == "parquet":
            raise InputError("Parquet cannot be read from stdin (it needs seeking): pass a file")
        yield from read_stream(sys.stdin.buffer, "stdin", fmt, spec)
        return
    try:
        handle = open(path, "rb")  # noqa: SIM115 - closed below
    except OSError as exc:
        raise InputError(f"cannot open {path}: {exc.strerror}") from None
    with handle:
        yield from read_stream(handle, path, fmt, spec)


def count_records(path: str, fmt: InputFormat | None) -> int | None:
    """How many records :func:`read_path` yields for ``path``, when one quick pass over the
    bytes can tell (JSONL, BEIR and text: non-blank lines); None for stdin and CSV/TSV
    (a quoted field may span lines). For progress bars only."""
    if path == "-":
        return None
    fmt = fmt or detect_format(path)
    if fmt == "beir" and Path(path).is_dir():
        path = str(Path(path) / "corpus.jsonl")
    if fmt == "parquet":
        try:
            return int(_parquet().ParquetFile(path).metadata.num_rows)
        except (OSError, MissingDependencyError, ValueError):
            return None  # read_path reports it
    if fmt not in ("jsonl", "beir", "text"):
        return None
    try:
        with open(path, "rb") as handle:
            return sum(1 for raw in handle if raw.strip())
    except OSError:
        return None  # read_path reports it


def count_inputs(paths: Sequence[str], fmt: InputFormat | None, text_unit: str) -> int | None:
    """The number of input records when every PATH can tell (for progress bars):
    ``text_unit="file"`` counts files, else :func:`count_records` each."""
    if fmt == "text" and text_unit == "file" and "-" not in paths:
        return len(paths)
    counts = [count_records(path, fmt) for path in paths]
    return None if None in counts else sum(c for c in counts if c is not None)


def read_stream(
    stream: IO[bytes], name: str, fmt: InputFormat, spec: FieldSpec
) -> Iterator[Record]:
    """The records of one open file (Parquet needs a seekable one)."""
    if fmt == "jsonl":
        yield from read_jsonl(stream, name, spec)
    elif fmt in ("csv", "tsv"):
        yield from read_delimited(stream, name, spec, "," if fmt == "csv" else "\t")
    elif fmt == "text":
        yield from read_text_lines(stream, name, spec)
    elif fmt == "parquet":
        yield from read_parquet(stream, name, spec)
    else:
        raise InputError(f"format {fmt!r} is not one of {', '.join(INPUT_FORMATS)}")


def _decode(raw: bytes, name: str, number: int) -> str | ReadFailure:
    if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]  # UTF-8 byte order mark
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return ReadFailure(
            f"{name}:{number}",
            f"invalid UTF-8 at byte {exc.start}: re-save the file as UTF-8",
            raw.decode("utf-8", errors="replace"),
        )


def read_jsonl(stream: IO[bytes], name: str, spec: FieldSpec) -> Iterator[Record]:
    """One JSON object a line; blank lines are skipped silently (they hold no document)."""
    for number, raw in enumerate(stream, start=1):
        line = _decode(raw, name, number)
        if isinstance(line, ReadFailure):
            yield line
            continue
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            yield ReadFailure(
                f"{name}:{number}", f"invalid JSON at column {exc.colno}: {exc.msg}", line[:1000]
            )
            continue
        yield to_document(record, spec, f"{name}:{number}")


def read_delimited(
    stream: IO[bytes], name: str, spec: FieldSpec, delimiter: str
) -> Iterator[Record]:
    """CSV/TSV with a header row; ragged rows are failures, not guesses. Decoded row by row: a
    row with invalid UTF-8 is one failure at its first line, and every other row is read."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _read_csv_rows(_RowLines(text), name, spec, delimiter)
    finally:
        text.detach()  # the caller owns (and closes) the byte stream


_UNDECODED = re.compile("[\udc80-\udcff]")  # the bytes errors="surrogateescape" kept


class _RowLines:
    """The physical lines fed to ``csv.reader``, kept until the row they make is taken, so a
    row is named by its first line (the header is line 1; a quoted newline starts a line)."""

    def __init__(self, text: IO[str]) -> None:
        self.text, self.done = text, 0
        self.lines: list[str] = []

    def __iter__(self) -> _RowLines:
        return self

    def __next__(self) -> str:
        line = next(self.text)
        self.lines.append(line)
        return line

    def take(self) -> tuple[int, list[str]]:
        """The first line number of the row just read, and its lines."""
        first, lines, self.lines = self.done + 1, self.lines, []
        self.done += len(lines)
        return first, lines


def _undecoded(row: list[str], header: list[str], first: int, lines: list[str]) -> str | None:
    """Why a row holding bytes that are not UTF-8 fails (None when it is all UTF-8)."""
    for column, value in enumerate(row):
        found = _UNDECODED.search(value)
        if found is None:
            continue
        field = repr(header[column]) if column < len(header) else f"#{column + 1}"
        where = next(k for k, line in enumerate(lines) if _UNDECODED.search(line))
        line = f" on line {first + where}" if where else ""
        byte = ord(found.group()) - 0xDC00
        return f"invalid UTF-8 byte 0x{byte:02x} in field {field}{line}: re-save the file as UTF-8"
    return None


def _replaced(lines: list[str]) -> str:
    """A row's text with its undecodable bytes as U+FFFD, for the dead-letter file."""
    return "".join(lines).encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _read_csv_rows(
    lines: _RowLines, name: str, spec: FieldSpec, delimiter: str
) -> Iterator[Record]:
    reader = csv.reader(lines, delimiter=delimiter)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"{name}:1: cannot read the header row: {exc}") from None
    if any(_UNDECODED.search(field) for field in header):
        raise InputError(f"{name}:1: the header row is not valid UTF-8: re-save the file as UTF-8")
    missing = [f for f in (*spec.text_fields, *spec.metadata_fields) if f not in header]
    if len(missing) == len(spec.text_fields) + len(spec.metadata_fields) or (
        spec.id_field and spec.id_field not in header
    ):
        raise InputError(
            f"{name}:1: header {header} lacks the fields asked for "
            f"({', '.join(missing) or spec.id_field}); choose them with --text-field / --id-field"
        )
    lines.take()
    while True:
        try:
            row: list[str] | csv.Error = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            row = exc
        first, raw = lines.take()
        if not row:
            continue
        origin = f"{name}:{first}"
        if isinstance(row, csv.Error):
            yield ReadFailure(origin, f"unreadable row: {row}", _replaced(raw))
        elif (undecoded := _undecoded(row, header, first, raw)) is not None:
            yield ReadFailure(origin, undecoded, _replaced(raw))
        elif len(row) != len(header):
            yield ReadFailure(
                origin, f"row has {len(row)} fields, the header has {len(header)}", row
            )
        else:
            yield to_document(dict(zip(header, row, strict=True)), spec, origin)


def _parquet() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError as exc:
        raise MissingDependencyError("pyarrow", "parquet", "reading Parquet") from exc
    return pq


def read_parquet(
    stream: IO[bytes], name: str, spec: FieldSpec, rows: int = 1024
) -> Iterator[Record]:
    """Parquet rows (a seekable stream), ``rows`` at a time; origin ``name:row N`` (1-based).
    Dates and times become ISO strings and decimals floats, so they can be metadata."""
    pq = _parquet()
    try:
        parquet = pq.ParquetFile(stream)
    except Exception as exc:  # pyarrow raises ArrowInvalid, OSError, ...
        raise InputError(f"{name}: not a readable Parquet file ({exc})") from None
    wanted = [c for c in (*spec.id_candidates(), *spec.text_fields, *spec.metadata_fields)
              if c in parquet.schema_arrow.names]  # fmt: skip
    number = 0
    for batch in parquet.iter_batches(batch_size=rows, columns=wanted or None):
        for row in batch.to_pylist():
            number += 1
            record = {key: _plain(value) for key, value in row.items()}
            yield to_document(record, spec, f"{name}:row {number}")


def _plain(value: Any) -> Any:
    """A Parquet value as JSON-like Python: dates/times as ISO text, decimals as floats."""
    if isinstance(value, datetime.date | datetime.time):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return float(value)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def read_text_lines(stream: IO[bytes], name: str, spec: FieldSpec) -> Iterator[Record]:
    """Plain text: one document a non-empty line, id ``name:line`` unless content-hashed."""
    field = spec.text_fields[-1]
    for number, raw in enumerate(stream, start=1):
        line = _decode(raw, name, number)
        if isinstance(line, ReadFailure):
            yield line
        elif line.strip():
            yield Document(None, {field: line.rstrip("\r\n")}, {}, f"{name}:{number}")


def read_text_file(path: str, spec: FieldSpec, data: bytes | None = None) -> Record:
    """A whole file (``data``, when already read) as one document, its path as id."""
    raw = Path(path).read_bytes() if data is None else data
    text = _decode(raw, path, 1)
    if isinstance(text, ReadFailure):
        return text
    if not text.strip():
        return ReadFailure(path, "empty file")
    return Document(path, {spec.text_fields[-1]: text}, {}, path)
