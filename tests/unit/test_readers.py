import io

import pytest

from es_semantic.errors import InputError
from es_semantic.indexing.readers import (
    FieldSpec,
    detect_format,
    read_delimited,
    read_jsonl,
    read_path,
    read_text_lines,
    to_document,
)
from es_semantic.types import Document, ReadFailure

SPEC = FieldSpec()


def jsonl(data: bytes):
    return list(read_jsonl(io.BytesIO(data), "c.jsonl", SPEC))


def test_jsonl_good_and_bad_lines_keep_going():
    out = jsonl(
        b'\xef\xbb\xbf{"id": "1", "text": "first"}\n'
        b"{not json}\n"
        b"\n"
        b'{"id": "3", "text": "caf\xe9"}\n'  # latin-1 byte: invalid UTF-8
        b'{"id": "4", "title": "T", "text": "body"}\n'
        b'{"id": "5", "text": "   "}\n'
        b'{"id": {"x": 1}, "text": "y"}\n'
        b'{"id": "8", "text": ["a"]}\n'
        b'{"text": "no id: content hash later"}\n'
    )
    kinds = [(type(r).__name__, r.origin) for r in out]
    assert kinds == [
        ("Document", "c.jsonl:1"),
        ("ReadFailure", "c.jsonl:2"),
        ("ReadFailure", "c.jsonl:4"),
        ("Document", "c.jsonl:5"),
        ("ReadFailure", "c.jsonl:6"),
        ("ReadFailure", "c.jsonl:7"),
        ("ReadFailure", "c.jsonl:8"),
        ("Document", "c.jsonl:9"),
    ]
    assert "invalid JSON at column 2" in out[1].reason
    assert "invalid UTF-8" in out[2].reason
    assert "no text" in out[4].reason
    assert "id field 'id' is dict" in out[5].reason
    assert "text field 'text' is list" in out[6].reason
    assert out[3].full_text() == "T body"
    assert out[7].id is None


def test_numbers_become_text_and_metadata_is_checked():
    spec = FieldSpec(text_fields=("text",), metadata_fields=("year", "tags"))
    doc = to_document({"id": 7, "text": 42, "year": 2020, "tags": ["a", "b"]}, spec, "x")
    assert isinstance(doc, Document)
    assert (doc.id, dict(doc.texts), dict(doc.metadata)) == (
        "7",
        {"text": "42"},
        {"year": 2020, "tags": ["a", "b"]},
    )
    bad = to_document({"id": "1", "text": "t", "year": {"a": 1}}, spec, "x")
    assert isinstance(bad, ReadFailure) and "metadata field 'year'" in bad.reason


def test_explicit_id_field_required():
    out = to_document({"text": "t"}, FieldSpec(id_field="doc_id"), "f:3")
    assert isinstance(out, ReadFailure) and out.reason == "missing id field 'doc_id'"


def test_csv_ragged_rows_are_failures():
    data = b'id,title,text\n1,T,hello\n2,only-two\n3,T3,"quoted, with comma"\n4,a,b,c\n'
    out = list(read_delimited(io.BytesIO(data), "d.csv", SPEC, ","))
    assert [type(r).__name__ for r in out] == ["Document", "ReadFailure", "Document", "ReadFailure"]
    assert out[1].origin == "d.csv:3" and "2 fields, the header has 3" in out[1].reason
    assert out[2].texts["text"] == "quoted, with comma"


def test_csv_header_without_asked_fields_is_a_usage_error():
    with pytest.raises(InputError, match="lacks the fields"):
        list(read_delimited(io.BytesIO(b"a,b\n1,2\n"), "d.csv", SPEC, ","))


def test_text_lines():
    out = list(read_text_lines(io.BytesIO(b"first line\n\nsecond\n"), "t.txt", SPEC))
    assert [(r.origin, r.texts["text"]) for r in out] == [
        ("t.txt:1", "first line"),
        ("t.txt:3", "second"),
    ]


def test_detect_format_and_beir(tmp_path):
    (tmp_path / "corpus.jsonl").write_text('{"_id": "d1", "title": "T", "text": "x"}\n')
    assert detect_format(str(tmp_path)) == "beir"
    assert detect_format("a.tsv") == "tsv"
    with pytest.raises(InputError, match="--format"):
        detect_format("a.avro")
    assert detect_format("a.parquet") == "parquet"
    (doc,) = read_path(str(tmp_path), None, SPEC)
    assert doc.id == "d1"
    with pytest.raises(InputError, match="cannot open"):
        list(read_path(str(tmp_path / "missing.jsonl"), None, SPEC))


def test_count_records_matches_what_is_read(tmp_path):
    from es_semantic.indexing.readers import FieldSpec, count_records, read_path

    jsonl = tmp_path / "a.jsonl"
    jsonl.write_bytes(b'{"id": 1, "text": "a"}\n\n{bad\n{"id": 2, "text": "b"}\n\xff\xfe\n')
    spec = FieldSpec(None, ("text",), ())
    assert count_records(str(jsonl), None) == len(list(read_path(str(jsonl), None, spec))) == 4
    text = tmp_path / "b.txt"
    text.write_text("one\n\n  \ntwo\n")
    assert count_records(str(text), None) == len(list(read_path(str(text), None, spec))) == 2
    csv = tmp_path / "c.csv"
    csv.write_text('id,text\n1,"two\nlines"\n')
    assert count_records(str(csv), None) is None  # a quoted field may span lines
    assert count_records("-", "jsonl") is None
