"""Turn files and Python records into Documents, or ReadFailures that say file:line and why.

A bad record never stops the stream: it becomes a ReadFailure and reading goes on.
"""

from __future__ import annotations

import datetime
import decimal
import json
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import IO, Any, Literal, get_args

from es_semantic.errors import InputError, MissingDependencyError
from es_semantic.indexing.delimited import delimited_rows
from es_semantic.types import Document, ReadFailure

InputFormat = Literal["jsonl", "csv", "tsv", "text", "beir", "parquet"]
TextUnit = Literal["line", "file"]
INPUT_FORMATS: tuple[str, ...] = get_args(InputFormat)
Record = Document | ReadFailure
MAX_ID_BYTES = 512  # Elasticsearch's limit on _id
_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl", ".csv": "csv",
               ".tsv": "tsv", ".tab": "tsv", ".txt": "text", ".md": "text", ".parquet": "parquet",
               ".pq": "parquet"}  # fmt: skip


@dataclass(frozen=True)
class FieldSpec:
    """Which input fields are the id, the text (in order) and the metadata."""

    id_field: str | None = None
    text_fields: tuple[str, ...] = ("title", "text")
    metadata_fields: tuple[str, ...] = ()
    # an image index: the field naming each record's image file (read, checked and kept as
    # bytes), relative paths taken from ``image_base`` (the data file's folder)
    image_field: str | None = None
    image_base: str = ""

    def id_candidates(self) -> tuple[str, ...]:
        return (self.id_field,) if self.id_field else ("id", "_id")


def to_document(record: Any, spec: FieldSpec, origin: str) -> Record:
    """One input record (a mapping) -> Document, or a ReadFailure naming what is wrong."""
    if isinstance(record, Document):
        return record
    if spec.image_field is not None and isinstance(record, Mapping):
        from es_semantic.indexing.images import image_record

        return image_record(record, spec, origin)
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
        raise InputError(
            f"cannot tell the format of {path} from its extension: pass --format (one of "
            f"{', '.join(f for f in INPUT_FORMATS if f != 'beir')}; or beir for a folder)"
        )
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


class ThreadableReader(Iterator[Record]):
    """One of this package's readers (:func:`read_path`, the image reader): it holds nothing
    tied to the thread that made it, so ``AsyncIndexer`` reads it in a worker thread without
    being asked. Wrap any other iterator in one to have it read there (it must not be tied to
    the thread that made it)."""

    def __init__(self, records: Iterator[Record]) -> None:
        self._records = records

    def __next__(self) -> Record:
        return next(self._records)

    def close(self) -> None:
        """Close the file being read (a generator's ``close``), if it has one."""
        close = getattr(self._records, "close", None)
        if close is not None:
            close()


def read_path(
    path: str, fmt: InputFormat | None, spec: FieldSpec, text_unit: TextUnit | str = "line"
) -> ThreadableReader:
    """All records of one PATH (``-`` is stdin, read line by line), streamed;
    ``text_unit="file"``: a text file is one document (see :func:`read_stream`)."""
    return ThreadableReader(_read_path(path, fmt, spec, text_unit))


def _read_path(
    path: str, fmt: InputFormat | None, spec: FieldSpec, text_unit: TextUnit | str
) -> Iterator[Record]:
    path, fmt, spec = resolve_format(path, fmt, spec)
    if spec.image_field is not None and path != "-":  # image paths relative to the data file
        spec = replace(spec, image_base=str(Path(path).parent))
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
        yield from read_stream(handle, path, fmt, spec, text_unit)


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


def count_inputs(
    paths: Sequence[str], fmt: InputFormat | None, text_unit: TextUnit | str
) -> int | None:
    """The number of input records when every PATH can tell (for progress bars): a text file
    read as one document counts 1, any other PATH :func:`count_records`."""
    counts = [
        1 if path != "-" and _whole_file(fmt or detect_format(path), text_unit)
        else count_records(path, fmt)
        for path in paths
    ]  # fmt: skip
    return None if None in counts else sum(c for c in counts if c is not None)


def _whole_file(fmt: str, text_unit: str) -> bool:
    return fmt == "text" and text_unit == "file"


def read_stream(
    stream: IO[bytes],
    name: str,
    fmt: InputFormat,
    spec: FieldSpec,
    text_unit: TextUnit | str = "line",
) -> Iterator[Record]:
    """The records of one open file (Parquet needs a seekable one); ``text_unit="file"``: a
    text file is one document, its name the id (:func:`read_text_file`)."""
    if _whole_file(fmt, text_unit):
        yield read_text_file(name, spec, data=stream.read())
    elif fmt == "jsonl":
        yield from read_jsonl(stream, name, spec)
    elif fmt in ("csv", "tsv"):
        yield from read_delimited(stream, name, spec, "," if fmt == "csv" else "\t")
    elif fmt == "text":
        yield from read_text_lines(stream, name, spec)
    elif fmt == "parquet":
        yield from read_parquet(stream, name, spec)
    else:
        raise InputError(f"format {fmt!r} is not one of {', '.join(INPUT_FORMATS)}")


@dataclass(frozen=True)
class BadLine:
    """A line that is not JSON (``column``: where it breaks) or not UTF-8 (``column`` None):
    ``reason`` says what is wrong and what to do, ``message`` is the JSON parser's own words
    (the reason, for bytes that are not UTF-8), ``text`` the line as read."""

    reason: str
    message: str
    column: int | None
    text: str


def _utf8(raw: bytes | str, number: int) -> str | BadLine:
    """A line as text; a byte-order mark on line 1 dropped."""
    if isinstance(raw, str):
        return raw.removeprefix("\ufeff") if number == 1 else raw
    if number == 1:
        raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        reason = f"invalid UTF-8 at byte {exc.start}: re-save the file as UTF-8"
        return BadLine(reason, reason, None, raw.decode("utf-8", errors="replace"))


def json_lines(
    lines: Iterable[bytes | str], *, text_lines: bool = False
) -> Iterator[tuple[int, Any]]:
    """Each non-blank line's number (1-based) and its JSON value, or a :class:`BadLine`; blank
    lines hold nothing and are skipped. Bytes are decoded as UTF-8 line by line, so one bad
    byte spoils one line. ``text_lines``: a line not starting with ``{`` is plain text, yielded
    as a ``str`` without its line end."""
    for number, raw in enumerate(lines, start=1):
        line = _utf8(raw, number)
        if isinstance(line, BadLine):
            yield number, line
        elif not line.strip():
            continue
        elif text_lines and not line.lstrip().startswith("{"):
            yield number, line.rstrip("\r\n")
        else:
            try:
                yield number, json.loads(line)
            except json.JSONDecodeError as exc:
                reason = f"invalid JSON at column {exc.colno}: {exc.msg}"
                yield number, BadLine(reason, exc.msg, exc.colno, line[:1000])


def _decode(raw: bytes, name: str, number: int) -> str | ReadFailure:
    line = _utf8(raw, number)
    return (
        ReadFailure(f"{name}:{number}", line.reason, line.text)
        if isinstance(line, BadLine)
        else line
    )


def read_jsonl(stream: IO[bytes], name: str, spec: FieldSpec) -> Iterator[Record]:
    """One JSON object a line; blank lines are skipped silently (they hold no document)."""
    for number, value in json_lines(stream):
        origin = f"{name}:{number}"
        if isinstance(value, BadLine):
            yield ReadFailure(origin, value.reason, value.text)
        else:
            yield to_document(value, spec, origin)


def read_delimited(
    stream: IO[bytes], name: str, spec: FieldSpec, delimiter: str
) -> Iterator[Record]:
    """CSV/TSV with a header row (:mod:`es_semantic.indexing.delimited`)."""
    fields = (*spec.text_fields, *spec.metadata_fields)
    for row in delimited_rows(stream, name, delimiter, fields, spec.id_field):
        yield row if isinstance(row, ReadFailure) else to_document(row[1], spec, row[0])


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
    columns = (*spec.id_candidates(), *spec.text_fields, *spec.metadata_fields,
               *([spec.image_field] if spec.image_field else []))  # fmt: skip
    wanted = [c for c in columns if c in parquet.schema_arrow.names]
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
