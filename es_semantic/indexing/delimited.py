"""CSV/TSV rows as records: a header row, ragged rows as failures (not guesses), decoded row by
row so a row with invalid UTF-8 is one failure at its first line and every other row is read.
Rows become documents in :func:`es_semantic.indexing.readers.read_delimited`.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from collections.abc import Iterator, Sequence
from typing import IO

from es_semantic.errors import InputError
from es_semantic.types import ReadFailure

Row = tuple[str, dict[str, str]]  # origin (file:line), header -> value
csv.field_size_limit(min(sys.maxsize, 2**31 - 1))


def delimited_rows(
    stream: IO[bytes], name: str, delimiter: str, fields: Sequence[str], id_field: str | None
) -> Iterator[Row | ReadFailure]:
    """Each row (named by its first line) or why it fails. ``fields``: the fields asked for
    (a header with none of them, or without ``id_field``, is refused)."""
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    try:
        yield from _rows(_RowLines(text), name, delimiter, fields, id_field)
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


def _rows(
    lines: _RowLines, name: str, delimiter: str, fields: Sequence[str], id_field: str | None
) -> Iterator[Row | ReadFailure]:
    # strict: a quote left open is an error at the end of the file, not one field swallowing
    # every row after it (rows that would then be missing from the input, unnoticed)
    reader = csv.reader(lines, delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as exc:
        raise InputError(f"{name}:1: cannot read the header row: {exc}") from None
    if any(_UNDECODED.search(field) for field in header):
        raise InputError(f"{name}:1: the header row is not valid UTF-8: re-save the file as UTF-8")
    missing = [f for f in fields if f not in header]
    if len(missing) == len(fields) or (id_field and id_field not in header):
        raise InputError(
            f"{name}:1: header {header} lacks the fields asked for "
            f"({', '.join(missing) or id_field}); choose them with --text-field / --id-field"
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
            why = f"unreadable row: {row}"
            if "unexpected end of data" in str(row):  # strict: a quote open at the end
                why = (f"a quote opened on line {first} is never closed: its {len(raw)} lines "
                       "up to the end of the file were not read as rows")  # fmt: skip
            yield ReadFailure(origin, why, _replaced(raw))
        elif (undecoded := _undecoded(row, header, first, raw)) is not None:
            yield ReadFailure(origin, undecoded, _replaced(raw))
        elif len(row) != len(header):
            yield ReadFailure(
                origin, f"row has {len(row)} fields, the header has {len(header)}", row
            )
        else:
            yield origin, dict(zip(header, row, strict=True))
