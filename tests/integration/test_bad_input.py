"""Real bad files and a read-only index: every good document indexed, every bad one reported."""

from __future__ import annotations

import json

from es_semantic import Indexer
from es_semantic.indexing.readers import read_path
from tests.integration.test_indexing import corpus


def test_bad_jsonl_matrix(es, index_name, tiny, tmp_path):
    big = "the cat and the dog " * 262_144  # 5 MiB of text in one document
    lines = [
        "\ufeff" + json.dumps({"id": "bom", "text": "first line after a byte order mark"}),  # 1 ok
        '{"id": "broken", "text": "no closing brace"',  # 2 bad JSON
        json.dumps({"id": "empty", "text": ""}),  # 3 empty
        json.dumps({"id": "blank", "text": "   \t "}),  # 4 whitespace
        json.dumps({"id": "big", "text": big}),  # 5 ok, truncated
        json.dumps({"text": "no id: a content hash becomes the id"}),  # 6 ok
        json.dumps({"id": "dup", "text": "first version"}),  # 7 ok
        json.dumps({"id": "dup", "text": "second version wins"}),  # 8 ok (same id)
        json.dumps({"id": ["list"], "text": "id is a list"}),  # 9 bad id
        json.dumps({"id": "obj", "text": {"nested": "object"}}),  # 10 bad text
        json.dumps({"id": "nul-escaped", "text": "nul \u0000 inside"}),  # 11 ok
        '{"id": "nul-raw", "text": "raw \x00 byte"}',  # 12 bad JSON
        json.dumps({"id": 42, "text": 7}),  # 13 ok (numbers)
    ]
    raw = (
        "\n".join(lines).encode("utf-8") + b"\n" + b'{"id": "latin1", "text": "caf\xe9"}\n'
    )  # 14 bad UTF-8
    path = tmp_path / "bad.jsonl"
    path.write_bytes(raw)
    dead = tmp_path / "dead.jsonl"
    indexer = Indexer(es, index_name, tiny, dead_letter=dead)
    report = indexer.index(read_path(str(path), None, indexer.field_spec()))
    assert report.total == 14 == report.indexed + report.skipped + report.failed
    assert (report.indexed, report.failed) == (7, 7)
    assert report.truncated >= 1 and report.duplicates == 1
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert sorted(int(d["source"].rsplit(":", 1)[1]) for d in letters) == [2, 3, 4, 9, 10, 12, 14]
    assert all(d["source"].startswith(str(path)) and d["reason"] for d in letters)
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == 6  # "dup" stored once, second version
    assert es.get(index=index_name, id="dup")["_source"]["text"] == "second version wins"
    assert len(es.get(index=index_name, id="big")["_source"]["text"]) == len(big)


def test_csv_with_ragged_rows(es, index_name, tiny, tmp_path):
    path = tmp_path / "docs.csv"
    path.write_text(
        'id,title,text\n1,A,the cat\n2,B\n3,C,"the dog, and a bird"\n4,D,x,extra\n',
        encoding="utf-8",
    )
    dead = tmp_path / "dead.jsonl"
    indexer = Indexer(es, index_name, tiny, dead_letter=dead)
    report = indexer.index(read_path(str(path), None, indexer.field_spec()))
    assert (report.indexed, report.failed) == (2, 2)
    reasons = {
        json.loads(line)["source"]: json.loads(line)["reason"]
        for line in dead.read_text().splitlines()
    }
    assert reasons == {
        f"{path}:3": "row has 2 fields, the header has 3",
        f"{path}:5": "row has 4 fields, the header has 3",
    }


def test_read_only_index_items_are_dead_lettered(es, index_name, tiny, tmp_path):
    Indexer(es, index_name, tiny).index(corpus(20))
    es.indices.put_settings(index=index_name, settings={"index.blocks.write": True})
    try:
        dead = tmp_path / "dead.jsonl"
        report = Indexer(es, index_name, tiny, dead_letter=dead).index(corpus(10, start=100))
        assert (report.indexed, report.failed) == (0, 10)
        letters = [json.loads(line) for line in dead.read_text().splitlines()]
        assert len(letters) == 10 and all("cluster_block_exception" in d["reason"] for d in letters)
        assert es.count(index=index_name)["count"] == 20
    finally:
        es.indices.put_settings(index=index_name, settings={"index.blocks.write": False})
