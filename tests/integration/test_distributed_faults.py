"""The Ray engine's promise under the faults a cluster meets: a record that kills its worker
process every time it is encoded is dead-lettered and the run goes on (Ray alone restarts the
actor and sends the batch again, forever), and Ctrl-C accounts for every record read,
the batches in flight included."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from elasticsearch import Elasticsearch

from es_semantic.demo.server import ServerHandle
from es_semantic.errors import IndexingInterrupted
from tests.integration import ray_poison, ray_slow
from tests.integration.test_distributed import (
    _cluster_cpus,
    _docs,
    _stored,
    _within,
    _write_inputs,
    local_ray,
)

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra")

from es_semantic.distributed import engine, index_dataset, index_files  # noqa: E402
from es_semantic.indexing.options import IndexOptions  # noqa: E402

__all__ = ["local_ray"]


def _letters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_a_record_that_kills_its_worker_is_dead_lettered_and_the_run_goes_on(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    docs = _docs(60)
    docs[17]["text"] = f"{ray_poison.POISON}: the process that encodes this record dies"
    jsonl, _ = _write_inputs(tmp_path, docs)  # 62 lines: 2 of them bad
    dead = tmp_path / "poison.dead.jsonl"
    ray.cloudpickle.register_pickle_by_value(ray_poison)
    monkeypatch.setattr(engine, "_index_batches", lambda: ray_poison.DiesOnPoison)
    report = _within(180, lambda: index_files(
        [str(jsonl)], es_server.config, index_name, str(tiny_st_dir), workers=1,
        options=IndexOptions(batch_size=10, dead_letter=dead)))  # fmt: skip
    assert (report.indexed + report.skipped, report.failed, report.total) == (59, 3, 62)
    letters = _letters(dead)
    poisoned = [x for x in letters if isinstance(x["document"], dict)
                and x["document"].get("id") == "d17"]  # fmt: skip
    assert len(poisoned) == 1 and "died" in poisoned[0]["reason"], letters
    assert set(_stored(es, index_name)) == {d["id"] for d in docs} - {"d17"}


def test_ctrl_c_accounts_for_the_batches_in_flight(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """Ctrl-C mid-run: the batches on the workers finish, what was read and not yet sent is
    dead-lettered, and the report accounts for each record read once: the index holds exactly
    the documents it counts, and the records it counts are the file's first lines."""
    docs = _docs(1500)
    jsonl, _ = _write_inputs(tmp_path, docs)  # 1502 lines
    dead = tmp_path / "interrupted.dead.jsonl"
    with pytest.raises(IndexingInterrupted) as raised, _ctrl_c_at(es, index_name, 100):
        index_files([str(jsonl)], es_server.config, index_name, str(tiny_st_dir),
                    workers=2, cpus_per_worker=_cluster_cpus() / 4,
                    options=IndexOptions(batch_size=10, dead_letter=dead))  # fmt: skip
    report = raised.value.report
    assert report is not None and 100 <= report.indexed < 1500
    stored = _stored(es, index_name)
    assert len(stored) == report.indexed + report.skipped  # nothing written goes uncounted
    letters = _letters(dead)
    assert len(letters) == report.failed
    lines = {f"{jsonl}:{n}" for n in range(1, report.total + 1)}
    line_of = {d["id"]: n for n, d in _numbered(docs)}
    counted = {letter["source"] for letter in letters} | {
        f"{jsonl}:{line_of[doc_id]}" for doc_id in stored
    }
    assert counted == lines  # each record read counted once: the file's first report.total
    assert any(letter["reason"] == "not sent: indexing was interrupted" for letter in letters)
    assert "re-run" in str(raised.value)


def test_ctrl_c_stops_reading_a_users_dataset(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """A user's dataset is read by its own tasks, which the run cannot stop: after Ctrl-C the
    run ends once the batches begun before it are counted, and reads no more of the dataset
    (before: it read the dataset to its end and dead-lettered every row of it)."""

    def slow_row(row: dict[str, Any]) -> dict[str, Any]:  # a dataset that takes time to read
        time.sleep(0.01)
        return {"doc": f"r{row['id']}", "body": f"user row {row['id']} about {row['id'] % 7}"}

    rows = 4000
    dataset = ray.data.range(rows, override_num_blocks=80).map(slow_row)
    dead = tmp_path / "dataset.dead.jsonl"
    with pytest.raises(IndexingInterrupted) as raised, _ctrl_c_at(es, index_name, 100):
        index_dataset(dataset, es_server.config, index_name, str(tiny_st_dir), workers=2,
                      cpus_per_worker=_cluster_cpus() / 4,
                      options=IndexOptions(id_field="doc", text_fields=("body",), batch_size=10,
                                           dead_letter=dead))  # fmt: skip
    report = raised.value.report
    assert report is not None and report.indexed >= 100 and report.total < rows / 2
    assert len(_stored(es, index_name)) == report.indexed + report.skipped
    letters = _letters(dead) if dead.exists() else []
    assert len(letters) == report.failed
    assert "re-run" in str(raised.value)


def test_ctrl_c_reads_no_file_it_has_not_begun(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Many small files (a corpus in shards): after Ctrl-C a file not begun is not read (before:
    each was read to its end, under the block after which a read stops, and dead-lettered)."""
    paths = []
    for shard in range(60):
        path = tmp_path / f"shard-{shard:02}.jsonl"
        docs = _docs(25)
        path.write_text("".join(json.dumps({**d, "id": f"s{shard}-{d['id']}"}) + "\n"
                                for d in docs), encoding="utf-8")  # fmt: skip
        paths.append(str(path))
    ray.cloudpickle.register_pickle_by_value(ray_slow)
    monkeypatch.setattr(engine, "_read_files", ray_slow.read_files)
    dead = tmp_path / "shards.dead.jsonl"
    with pytest.raises(IndexingInterrupted) as raised, _ctrl_c_at(es, index_name, 100):
        index_files(paths, es_server.config, index_name, str(tiny_st_dir), workers=2,
                    cpus_per_worker=_cluster_cpus() / 4,
                    options=IndexOptions(batch_size=10, dead_letter=dead))  # fmt: skip
    report = raised.value.report
    assert report is not None and report.indexed >= 100 and report.total < 60 * 25 / 2
    assert len(_stored(es, index_name)) == report.indexed + report.skipped
    assert len(_letters(dead) if dead.exists() else []) == report.failed


@contextlib.contextmanager
def _ctrl_c_at(es: Elasticsearch, index: str, count: int) -> Iterator[None]:
    """Ctrl-C (SIGINT to this process) once the index holds ``count`` documents."""
    stop = threading.Event()

    def interrupt_mid_run() -> None:
        deadline = time.monotonic() + 180
        while not stop.is_set() and time.monotonic() < deadline:
            if es.indices.exists(index=index):
                es.indices.refresh(index=index)
                if es.count(index=index)["count"] >= count:
                    os.kill(os.getpid(), signal.SIGINT)
                    return
            time.sleep(0.1)

    watcher = threading.Thread(target=interrupt_mid_run, daemon=True)
    watcher.start()
    try:
        yield
    finally:
        stop.set()
        watcher.join()


def _numbered(docs: list[dict[str, Any]]) -> list[tuple[int, dict[str, Any]]]:
    """Each document with its line in the file ``_write_inputs`` writes (bad lines after the
    4th and the 8th document)."""
    out, line = [], 0
    for i, doc in enumerate(docs):
        line += 1
        out.append((line, doc))
        if i in (3, 7):
            line += 1
    return out


def test_identical_batches_at_once_are_not_taken_for_a_worker_death(
    local_ray: None, es_server: ServerHandle, index_name: str, tiny_st_dir: Path,
) -> None:  # fmt: skip
    """A dataset whose batches repeat (the same rows again, as a union of a dataset with
    itself makes): batches of the same rows on two workers at once are two batches, not a
    retry of a batch whose worker died; none is dead-lettered and the run ends."""
    rows = [{"doc": f"u{i % 10}", "body": f"user row {i % 10}"} for i in range(400)]
    report = _within(180, lambda: index_dataset(
        ray.data.from_items(rows), es_server.config, index_name, str(tiny_st_dir),
        workers=2, cpus_per_worker=_cluster_cpus() / 4,
        options=IndexOptions(id_field="doc", text_fields=("body",), batch_size=10)))  # fmt: skip
    assert report.failed == 0, [f.reason for f in report.failures]
    assert report.total == 400
