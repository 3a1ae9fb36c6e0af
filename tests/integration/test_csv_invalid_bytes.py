"""A CSV with one invalid UTF-8 byte, indexed for real: one dead letter at its true line, every
other row indexed, every row accounted for (issue #26 item 4)."""

from __future__ import annotations

import json

from es_semantic import Indexer
from es_semantic.indexing.readers import read_path


def test_csv_invalid_byte_is_one_dead_letter_at_its_line(es, index_name, tiny, tmp_path):
    rows = [b"id,title,text\n"]
    for i in range(1, 501):
        body = b'"caf\xe9\nau lait"' if i == 250 else b'"row %d\nsecond line"' % i
        rows.append(b"%d,Title %d,%s\n" % (i, i, body))  # every row spans two lines
    path = tmp_path / "docs.csv"
    path.write_bytes(b"".join(rows))
    dead = tmp_path / "dead.jsonl"
    indexer = Indexer(es, index_name, tiny, dead_letter=dead)
    report = indexer.index(read_path(str(path), None, indexer.field_spec()))
    assert (report.indexed, report.failed) == (499, 1)
    (letter,) = [json.loads(line) for line in dead.read_text().splitlines()]
    # the header is line 1; row N starts on line 2N
    assert letter["source"] == f"{path}:500"
    assert letter["reason"].startswith("invalid UTF-8 byte 0xe9 in field 'text'")
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == 499
    assert not es.exists(index=index_name, id="250")
    assert es.get(index=index_name, id="251")["_source"]["text"] == "row 251\nsecond line"
