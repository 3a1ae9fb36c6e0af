import csv
import io
import random
from pathlib import Path

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


def _csv_rows(n: int, bad_at: int) -> bytes:
    rows = [b"id,title,text\n"]
    for i in range(1, n + 1):
        text = b"caf\xe9 au lait" if i == bad_at else f"body of row {i}".encode()
        rows.append(b"%d,Title %d,%s\n" % (i, i, text))
    return b"".join(rows)


def test_csv_one_invalid_byte_fails_one_row_at_its_line():
    """500 rows, a latin-1 byte in row 250 (line 251): 499 documents and one failure there."""
    out = list(read_delimited(io.BytesIO(_csv_rows(500, 250)), "d.csv", SPEC, ","))
    docs = [r for r in out if isinstance(r, Document)]
    failures = [r for r in out if isinstance(r, ReadFailure)]
    assert len(docs) == 499 and len(failures) == 1
    assert failures[0].origin == "d.csv:251"
    assert "invalid UTF-8 byte 0xe9 in field 'text'" in failures[0].reason
    assert "re-save the file as UTF-8" in failures[0].reason
    assert failures[0].raw == "250,Title 250,caf\ufffd au lait\n"
    assert [d.id for d in docs] == [str(i) for i in range(1, 501) if i != 250]
    assert [d.origin for d in docs] == [f"d.csv:{i + 1}" for i in range(1, 501) if i != 250]


def test_csv_unreadable_row_is_one_failure_and_reading_goes_on():
    limit = csv.field_size_limit()
    csv.field_size_limit(20)
    try:
        data = b'id,text\n1,short\n2,"' + b"x" * 30 + b'"\n\n3,after\n'
        out = list(read_delimited(io.BytesIO(data), "d.csv", SPEC, ","))
    finally:
        csv.field_size_limit(limit)
    assert [(type(r).__name__, r.origin) for r in out] == [
        ("Document", "d.csv:2"), ("ReadFailure", "d.csv:3"), ("Document", "d.csv:5")
    ]  # fmt: skip
    assert "unreadable row: field larger than field limit" in out[1].reason


def test_csv_header_with_an_invalid_byte_is_a_usage_error():
    with pytest.raises(InputError, match=r"d.csv:1: the header row is not valid UTF-8"):
        list(read_delimited(io.BytesIO(b"id,t\xffitle,text\n1,a,b\n"), "d.csv", SPEC, ","))


# invalid UTF-8: a latin-1 letter, a lone continuation byte, a truncated sequence, an encoded
# surrogate, a byte never valid, an overlong encoding
BAD_BYTES = [b"\xe9", b"\x80", b"\xe2\x82", b"\xed\xa0\x80", b"\xff", b"\xc0\xaf"]
WORDS = ["alpha", "beta", "gamma", "caf\u00e9", "\u65e5\u672c", "x y", "", "42"]


def _random_field(rng: random.Random, newline: str, delimiter: str) -> str:
    words = rng.choices(WORDS, k=rng.randint(0, 4))
    if rng.random() < 0.2:
        words.insert(rng.randint(0, len(words)), newline)  # a quoted newline
    if rng.random() < 0.15:
        words.append(rng.choice(['"', delimiter, "'"]))
    return " ".join(words)


def _random_table(seed: int) -> tuple[bytes, str, list[tuple[int, list[str], int | None]]]:
    """A CSV/TSV file of random rows, some with quoted newlines and some with one invalid byte;
    with each row's first line (counted while writing, the header is line 1), its fields and
    the line of its invalid byte (None when it has none)."""
    rng = random.Random(seed)
    delimiter = rng.choice([",", "\t"])
    newline = rng.choice(["\n", "\r\n"])
    buf = io.StringIO(newline="")
    writer = csv.writer(buf, delimiter=delimiter, lineterminator=newline)
    writer.writerow(["id", "title", "text"])
    data, rows, line = b"", [], 1
    data += buf.getvalue().encode()
    for i in range(rng.randint(1, 300)):
        line += 1
        fields = [f"r{i}", _random_field(rng, newline, delimiter),
                  _random_field(rng, newline, delimiter) + f" row {i}"]  # fmt: skip
        bad = rng.random() < 0.1
        if bad:  # a marker inside the title or text, before or after its newline if any
            column = rng.choice([1, 2])
            at = rng.choice([j for j in range(len(fields[column]) + 1)
                             if fields[column][j - 1 : j + 1] != "\r\n"])  # fmt: skip
            fields[column] = fields[column][:at] + "\x01" + fields[column][at:]
        buf.seek(0), buf.truncate()
        writer.writerow(fields)
        encoded = buf.getvalue().encode()
        bad_line = line + encoded[: encoded.find(b"\x01")].count(b"\n") if bad else None
        encoded = encoded.replace(b"\x01", rng.choice(BAD_BYTES))
        rows.append((line, fields, bad_line))
        data += encoded
        line += encoded.count(b"\n") - 1
    if rng.random() < 0.3:
        data = b"\xef\xbb\xbf" + data
    return data, delimiter, rows


@pytest.mark.parametrize("seed", range(40))
def test_csv_every_row_is_read_or_failed_at_its_true_line(seed: int):
    data, delimiter, rows = _random_table(seed)
    out = list(read_delimited(io.BytesIO(data), "r.csv", SPEC, delimiter))
    assert len(out) == len(rows)  # every row accounted for, exactly once
    for record, (line, fields, bad_line) in zip(out, rows, strict=True):
        assert record.origin == f"r.csv:{line}"
        if bad_line is None:  # the text always holds "row N": every good row is a document
            assert isinstance(record, Document), record
            assert record.id == fields[0]
            assert dict(record.texts) == {"title": fields[1], "text": fields[2]}
            continue
        assert isinstance(record, ReadFailure), record
        assert "invalid UTF-8 byte" in record.reason
        # a byte after a quoted newline: the reason names its own line
        assert (f"on line {bad_line}:" in record.reason) == (bad_line != line), record.reason


@pytest.mark.parametrize(("reader", "name"), [(read_jsonl, "j.jsonl"), (read_text_lines, "t.txt")])
def test_line_formats_fail_only_the_line_with_an_invalid_byte(reader, name):
    lines = [b'{"id": "%d", "text": "line %d"}\n' % (i, i) for i in range(1, 501)]
    lines[249] = b'{"id": "250", "text": "caf\xe9"}\n'
    out = list(reader(io.BytesIO(b"".join(lines)), name, SPEC))
    assert len(out) == 500
    (failure,) = [r for r in out if isinstance(r, ReadFailure)]
    assert failure.origin == f"{name}:250" and "invalid UTF-8" in failure.reason


def test_the_package_readers_are_marked_threadable(tmp_path: Path) -> None:
    """AsyncIndexer reads in a worker thread, unasked, only what carries this mark (found by
    type): read_path and the image reader do, and stay lazy (a missing file fails when read)."""
    from es_semantic.indexing.images import read_images
    from es_semantic.indexing.readers import ThreadableReader

    data = tmp_path / "docs.jsonl"
    data.write_text('{"id": "a", "text": "one"}\n')
    records = read_path(str(data), None, FieldSpec())
    assert isinstance(records, ThreadableReader)
    assert [r.id for r in records] == ["a"]  # type: ignore[union-attr]
    assert isinstance(read_images([str(tmp_path)], FieldSpec(image_field="path")), ThreadableReader)
    missing = read_path(str(tmp_path / "missing.jsonl"), None, FieldSpec())
    with pytest.raises(InputError, match="cannot open"):
        next(missing)
