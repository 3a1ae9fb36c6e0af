"""The progress bar of an indexing run (pure): documents count once, when encoded or when
settled without encoding; a batch is encoded in parts so the count moves within it."""

from __future__ import annotations

import io

from tqdm import tqdm

from es_semantic.indexing.actions import BulkOutcome
from es_semantic.indexing.batch import IndexRun, encoding_parts
from es_semantic.indexing.dead_letter import DeadLetterSink
from es_semantic.types import Document, IndexReport, ReadFailure


def test_encoding_parts_start_with_one_pass_then_several():
    items = list(range(19))
    assert [list(p) for p in encoding_parts(items, 2, first=True)] == [
        [0, 1], list(range(2, 10)), list(range(10, 18)), [18]
    ]  # fmt: skip
    assert [len(p) for p in encoding_parts(items, 2, first=False)] == [8, 8, 3]
    assert list(encoding_parts([], 2, first=True)) == []
    assert [len(p) for p in encoding_parts(items, 0, first=True)] == [1, 4, 4, 4, 4, 2]


def _run(tmp_path) -> tuple[IndexRun, tqdm]:  # type: ignore[type-arg]
    report = IndexReport("ix")
    bar = tqdm(total=6, file=io.StringIO(), mininterval=0)
    return IndexRun(report, DeadLetterSink(report, tmp_path / "dead.jsonl"), bar), bar


def test_each_document_moves_the_bar_once_whatever_its_end(tmp_path):
    run, bar = _run(tmp_path)
    docs = [Document(f"d{i}", {"text": "t"}, {}, f"f:{i}") for i in range(5)]
    list(run.taking(docs))
    run.encoded_docs(docs[:4])  # out of the encoder: counted now
    assert bar.n == 4
    for doc in docs[:3]:
        run.sent({"_id": doc.id}, doc)
    run.record(BulkOutcome("d0", True, ""))
    run.record(BulkOutcome("d1", False, "mapper_parsing_exception"))
    assert bar.n == 4  # indexed or failed after encoding: not counted again
    run.fail_unconfirmed("not confirmed")  # d2, encoded
    run.fail_records([docs[3]], "not sent")  # encoded, never sent
    assert bar.n == 4
    run.fail_records([docs[4]], "encoding failed")  # never encoded: counted when failed
    run.skipped([])
    run.fail_records([ReadFailure("f:9", "not valid JSON", "{")], "")
    report = run.close()
    assert bar.n == 6 == report.indexed + report.failed
    assert (report.indexed, report.failed) == (1, 5)


def test_the_same_document_object_twice_is_counted_twice(tmp_path):
    run, bar = _run(tmp_path)
    doc = Document("same", {"text": "t"}, {}, "f:1")
    run.encoded_docs([doc, doc])
    run.sent({"_id": "same"}, doc)
    run.sent({"_id": "same"}, doc)
    run.record(BulkOutcome("same", True, ""))
    run.record(BulkOutcome("same", True, ""))
    run.skipped([Document("s", {"text": "t"}, {}, "f:2")])
    assert bar.n == 3 and run.close().indexed == 2


def test_the_bar_names_the_stage_and_the_confirmed_count(tmp_path):
    run, bar = _run(tmp_path)
    doc = Document("d", {"text": "t"}, {}, "f:1")
    list(run.taking([doc]))
    run.stage("encoding")
    assert bar.postfix == "encoding, 0 indexed"
    run.encoded_docs([doc])
    run.hand_over()
    assert bar.postfix == "sending, 0 indexed"
    run.sent({"_id": "d"}, doc)
    run.record(BulkOutcome("d", True, ""))
    assert bar.postfix == "sending, 1 indexed"
    list(run.taking([Document("e", {"text": "t"}, {}, "f:2")]))
    assert bar.postfix.startswith("reading")
    run.fail_in_hand("stopped")
    run.close()
    assert bar.postfix == "done, 1 indexed"
