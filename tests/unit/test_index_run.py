"""IndexRun counts each record once: an outcome that arrives after its document was failed as
unconfirmed, or after the run closed (a sender that outlived the run), changes nothing, and the
dead-letter file keeps every line written before."""

from __future__ import annotations

import json

from tqdm import tqdm

from es_semantic.indexing.actions import BulkOutcome
from es_semantic.indexing.batch import IndexRun
from es_semantic.indexing.dead_letter import DeadLetterSink
from es_semantic.types import Document, IndexReport


def _run(path) -> IndexRun:
    report = IndexReport("ix")
    return IndexRun(report, DeadLetterSink(report, path), tqdm(disable=True))


def test_a_late_outcome_is_not_counted_twice(tmp_path):
    run = _run(tmp_path / "dead.jsonl")
    docs = [Document(f"d{i}", {"text": "t"}, {}, f"f:{i}") for i in range(3)]
    for doc in docs:
        run.sent({"_id": doc.id}, doc)
    run.record(BulkOutcome("d0", True, ""))
    run.fail_unconfirmed("not confirmed")  # the run stopped: d1, d2 are dead letters
    run.record(BulkOutcome("d1", True, ""))  # ... and then a sender reports d1 after all
    report = run.close()
    run.record(BulkOutcome("d2", False, "late"))  # after the close
    run.fail("f:9", "late", {"id": "d9"})
    assert (report.indexed, report.failed) == (1, 2)
    lines = (tmp_path / "dead.jsonl").read_text().splitlines()
    assert [json.loads(x)["source"] for x in lines] == ["f:1", "f:2"]


def test_the_dead_letter_file_is_never_truncated_mid_run(tmp_path):
    path = tmp_path / "dead.jsonl"
    report = IndexReport("ix")
    sink = DeadLetterSink(report, path)
    sink.add("a", "r", {})
    sink.close()
    sink.add("b", "r", {})  # opened again: appended, not truncated
    sink.close()
    assert [json.loads(x)["source"] for x in path.read_text().splitlines()] == ["a", "b"]


def test_an_interrupt_while_handing_actions_to_the_senders_loses_none(tmp_path, monkeypatch):
    """Ctrl-C while the producer waits for room in a sender's queue: the share it was putting
    and every later share become dead letters (the in-hand ledger had let go of them)."""
    import pytest

    from es_semantic.indexing import bulk_pipeline

    run = _run(tmp_path / "dead.jsonl")
    pipe = bulk_pipeline.BulkPipeline.__new__(bulk_pipeline.BulkPipeline)
    pipe.run, pipe.error = run, None
    pipe._queues = [bulk_pipeline.queue.Queue(2) for _ in range(3)]
    puts = {"n": 0}

    def put(target, items):
        puts["n"] += 1
        if puts["n"] == 2:
            raise KeyboardInterrupt
        target.put(items)

    monkeypatch.setattr(pipe, "_put", put)
    docs = [Document(f"id-{i}", {"text": "t"}, {}, f"f:{i}") for i in range(30)]
    actions = [({"_id": d.id}, d) for d in docs]
    with pytest.raises(KeyboardInterrupt):
        pipe.put(actions)
    queued = sum(len(items) for q in pipe._queues for items in q.queue)
    report = run.close()
    assert queued + report.failed == 30 and report.failed > 0
