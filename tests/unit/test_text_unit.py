"""``text_unit="file"``: one dispatch (readers.read_stream) makes a text file one document, for
the local CLI (through read_path) and the Ray datasource (through read_stream) alike, whether
the format was given or told by the extension."""

import io
from pathlib import Path

import pytest

from es_semantic.indexing.readers import FieldSpec, count_inputs, read_path, read_stream
from es_semantic.types import Document, ReadFailure

SPEC = FieldSpec()


@pytest.fixture
def notes(tmp_path: Path) -> Path:
    path = tmp_path / "notes.txt"
    path.write_text("line one\nline two\n\nline three\n", encoding="utf-8")
    return path


@pytest.mark.parametrize("fmt", ["text", None])
def test_a_text_file_is_one_document_with_its_path_as_id(notes: Path, fmt: str | None) -> None:
    (doc,) = read_path(str(notes), fmt, SPEC, text_unit="file")  # type: ignore[arg-type]
    assert isinstance(doc, Document)
    assert doc.id == str(notes) and doc.origin == str(notes)
    assert doc.texts == {"text": "line one\nline two\n\nline three\n"}


@pytest.mark.parametrize("fmt", ["text", None])
def test_lines_stay_the_default(notes: Path, fmt: str | None) -> None:
    docs = list(read_path(str(notes), fmt, SPEC))  # type: ignore[arg-type]
    assert [d.origin for d in docs] == [f"{notes}:1", f"{notes}:2", f"{notes}:4"]


def test_a_stream_read_as_one_file_is_what_read_path_gives(notes: Path) -> None:
    """The Ray datasource hands read_stream an open stream and the path."""
    from_stream = list(read_stream(io.BytesIO(notes.read_bytes()), str(notes), "text", SPEC,
                                   text_unit="file"))  # fmt: skip
    assert from_stream == list(read_path(str(notes), None, SPEC, text_unit="file"))


def test_an_empty_or_undecodable_file_is_one_failure(tmp_path: Path) -> None:
    empty, latin = tmp_path / "empty.txt", tmp_path / "latin.txt"
    empty.write_bytes(b"  \n")
    latin.write_bytes(b"caf\xe9\n")
    (first,) = read_path(str(empty), None, SPEC, text_unit="file")
    (second,) = read_path(str(latin), None, SPEC, text_unit="file")
    assert isinstance(first, ReadFailure) and first.reason == "empty file"
    assert isinstance(second, ReadFailure) and "invalid UTF-8 at byte 3" in second.reason


def test_a_jsonl_file_is_read_by_records_whatever_the_text_unit(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "a", "text": "x"}\n{"id": "b", "text": "y"}\n', encoding="utf-8")
    assert [d.id for d in read_path(str(path), None, SPEC, text_unit="file")] == ["a", "b"]


def test_progress_counts_files_when_each_file_is_a_document(notes: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.md"
    other.write_text("one\ntwo\n", encoding="utf-8")
    assert count_inputs([str(notes), str(other)], None, "file") == 2
    assert count_inputs([str(notes), str(other)], None, "line") == 5
