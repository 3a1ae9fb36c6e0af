"""The Ray engine against the real server: a local Ray (no network), the tiny model.

Its report and index equal the local engine's on JSONL and Parquet; bad rows are
dead-lettered in one file; an actor killed mid-run loses and duplicates nothing; a re-run
encodes nothing."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch, helpers

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.indexing.readers import read_path
from es_semantic.server import ServerHandle

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra")
pq = pytest.importorskip("pyarrow.parquet")
psutil = pytest.importorskip("psutil")

from es_semantic.distributed import index_dataset, index_files  # noqa: E402


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A Ray of its own for this module: 4 logical CPUs (actors and read tasks side by side)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def _docs(n: int) -> list[dict[str, Any]]:
    return [
        {"id": f"d{i}", "title": f"title {i}", "text": f"document {i} about subject {i % 11}",
         "lang": ["en", "de"][i % 2]}
        for i in range(n)
    ]  # fmt: skip


def _write_inputs(folder: Path, docs: list[dict[str, Any]]) -> tuple[Path, Path]:
    """The same documents as JSONL (with two bad lines) and Parquet (with one bad row)."""
    jsonl = folder / "docs.jsonl"
    with jsonl.open("w", encoding="utf-8") as out:
        for i, doc in enumerate(docs):
            out.write(json.dumps(doc) + "\n")
            if i == 3:
                out.write("{not json\n")
            if i == 7:
                out.write(json.dumps({"id": "blank", "text": "   "}) + "\n")
    parquet = folder / "docs.parquet"
    rows = [*docs[:5], {"id": "empty", "title": None, "text": None, "lang": "en"}, *docs[5:]]
    pq.write_table(__import__("pyarrow").Table.from_pylist(rows), parquet, row_group_size=16)
    return jsonl, parquet


def _stored(es: Elasticsearch, index: str) -> dict[str, dict[str, Any]]:
    es.indices.refresh(index=index)
    return {hit["_id"]: hit["_source"] for hit in helpers.scan(es, index=index,
            query={"query": {"match_all": {}}}, _source_includes=["title", "lang", "content_hash"])}  # fmt: skip


def _knn(
    es: Elasticsearch, index: str, encoder: Encoder, query: str, k: int = 40
) -> dict[str, float]:
    """Each document's kNN score for ``query``: equal vectors give equal scores."""
    result = Searcher(es, index, encoder).search(query, mode="knn", k=k)
    return {hit.id: round(hit.score, 5) for hit in result.hits}


def _counts(report: Any) -> tuple[int, int, int, int]:
    return report.indexed, report.skipped, report.failed, report.encoded


def test_ray_engine_equals_the_local_engine_on_jsonl_and_parquet(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    docs = _docs(40)
    jsonl, parquet = _write_inputs(tmp_path, docs)
    options = {"metadata_fields": ["lang"], "batch_size": 16}
    local = Indexer(es, f"{index_name}-local", Encoder(tiny_st_dir), **options)
    local_report = local.index(read_path(str(jsonl), None, local.field_spec()))

    dead = tmp_path / "ray.dead.jsonl"
    report = index_files([str(jsonl)], es_server.config, f"{index_name}-ray", str(tiny_st_dir),
                         workers=2, dead_letter=dead, **options)  # fmt: skip

    assert _counts(report) == _counts(local_report) == (40, 0, 2, 40)
    assert report.total == 42 == report.indexed + report.skipped + report.failed
    letters = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert {letter["source"] for letter in letters} == {f"{jsonl}:5", f"{jsonl}:10"}
    assert any("invalid JSON" in letter["reason"] for letter in letters)
    ray_docs, local_docs = _stored(es, f"{index_name}-ray"), _stored(es, f"{index_name}-local")
    assert ray_docs == local_docs and len(ray_docs) == 40
    tiny = Encoder(tiny_st_dir)
    for query in ("subject 3", "title 12", "document about"):
        found = _knn(es, f"{index_name}-ray", tiny, query)
        assert len(found) == 40 and found == _knn(es, f"{index_name}-local", tiny, query)

    # Parquet (the local engine reads it too): same documents, the bad row by its row number
    local_pq = Indexer(es, f"{index_name}-localpq", Encoder(tiny_st_dir), **options)
    local_pq_report = local_pq.index(read_path(str(parquet), None, local_pq.field_spec()))
    pq_report = index_files([str(parquet)], es_server.config, f"{index_name}-raypq",
                            str(tiny_st_dir), workers=1, **options)  # fmt: skip
    assert _counts(pq_report) == _counts(local_pq_report) == (40, 0, 1, 40)
    assert [f.source for f in pq_report.failures] == [f"{parquet}:row 6"]
    assert _stored(es, f"{index_name}-raypq") == ray_docs


def test_a_dataset_the_user_already_has(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path,
) -> None:  # fmt: skip
    rows = [{"doc": f"u{i}", "body": f"user row {i}"} for i in range(30)]
    rows[4] = {"doc": "u4", "body": None}
    rows[9] = {"doc": " ", "body": "an id of blanks"}
    report = index_dataset(ray.data.from_items(rows), es_server.config, index_name,
                           str(tiny_st_dir), id_field="doc", text_fields=["body"])  # fmt: skip
    assert (report.indexed, report.failed, report.total) == (28, 2, 30)
    reasons = {f.source: f.reason for f in report.failures}
    assert set(reasons) == {"dataset (id u4)", "dataset (id  )"}
    assert "no text" in reasons["dataset (id u4)"] and "empty" in reasons["dataset (id  )"]
    assert len(_stored(es, index_name)) == 28


def _actor_pids() -> list[int]:
    pids = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        if "IndexBatches" in cmdline and "MapWorker" in cmdline:
            pids.append(proc.pid)
    return pids


def test_an_actor_killed_mid_run_loses_and_duplicates_nothing(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    docs = _docs(1500)
    jsonl, _ = _write_inputs(tmp_path, docs)
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["report"] = index_files([str(jsonl)], es_server.config, index_name,
                                           str(tiny_st_dir), workers=2, batch_size=10)  # fmt: skip
        except BaseException as exc:  # pragma: no cover - shown by the assertion below
            result["error"] = exc

    runner = threading.Thread(target=run)
    runner.start()
    deadline = time.monotonic() + 120
    while not es.indices.exists(index=index_name) or es.count(index=index_name)["count"] < 100:
        assert runner.is_alive() and time.monotonic() < deadline, "the run ended before the kill"
        time.sleep(0.1)
        if es.indices.exists(index=index_name):
            es.indices.refresh(index=index_name)
    victims = _actor_pids()
    assert victims, "no actor process found"
    os.kill(victims[0], signal.SIGKILL)
    assert runner.is_alive(), "the kill must land mid-run"
    runner.join(timeout=300)
    assert not runner.is_alive() and "error" not in result, result.get("error")
    report = result["report"]
    assert report.indexed + report.skipped + report.failed == 1502
    assert report.failed == 2 and report.indexed + report.skipped == 1500
    stored = _stored(es, index_name)
    assert sorted(stored) == sorted(d["id"] for d in docs)
    assert es.count(index=index_name)["count"] == 1500  # each document exactly once

    again = index_files([str(jsonl)], es_server.config, index_name, str(tiny_st_dir), workers=2)
    assert (again.skipped, again.encoded, again.indexed, again.failed) == (1500, 0, 0, 2)


def test_cli_ray_engine_with_the_packaged_model(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    monkeypatch.setenv("ES_URL", es_server.config.url or "")
    _, parquet = _write_inputs(tmp_path, _docs(24))
    report_file = tmp_path / "report.json"
    result = CliRunner().invoke(cli, [
        "index", index_name, str(parquet), "--engine", "ray", "--workers", "1",
        "--metadata-field", "lang", "--report-json", str(report_file), "--quiet",
        "--dead-letter", str(tmp_path / "dead.jsonl"),
    ])  # fmt: skip
    assert result.exit_code == 1, result.output  # one bad row: exit 1, as the local engine
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert (report["indexed"], report["failed"], report["total"]) == (24, 1, 25)
    hits = es.search(index=index_name, query={"match": {"title": "title 7"}}, size=1)
    assert hits["hits"]["hits"][0]["_id"] == "d7"
    info = es.indices.get_mapping(index=index_name)[index_name]["mappings"]["_meta"]
    assert "MiniLM" in json.dumps(info)  # the packaged model, not the tiny one
    scores = _knn(es, index_name, Encoder(), "document 5 about subject 5", k=3)
    assert max(scores, key=scores.__getitem__) == "d5"
    assert (tmp_path / "dead.jsonl").read_text(encoding="utf-8").count("\n") == 1
