"""The Ray engine against the real server: a local Ray (no network) with the machine's real
CPUs, the tiny model.

Its report and index equal the local engine's on JSONL and Parquet; bad rows are
dead-lettered in one file; an actor killed mid-run loses and duplicates nothing; a re-run
encodes nothing; a batch that meets a stopped cluster loses no other batch's report; workers
that take every CPU still end, and a plan no node can hold fails in one line."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from elasticsearch import Elasticsearch, helpers

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.demo.server import ServerHandle
from es_semantic.errors import ConfigError, IndexingError
from es_semantic.indexing.readers import read_path
from tests.integration.fault_proxy import fault_proxy

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra")
pq = pytest.importorskip("pyarrow.parquet")
psutil = pytest.importorskip("psutil")

from es_semantic.distributed import index_dataset, index_files  # noqa: E402
from es_semantic.indexing.options import IndexOptions  # noqa: E402


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    """A Ray of its own for this module, with the CPUs Ray finds on this machine (never more:
    4 logical CPUs on 2 cores once hid a hang that every user of `--workers 2` met)."""
    if ray.is_initialized():
        ray.shutdown()
    ray.init(include_dashboard=False, log_to_driver=False)
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


def _within(seconds: float, call: Callable[[], Any]) -> Any:
    """``call()``'s result or error, failing the test when it has not ended in ``seconds``."""
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = call()
        except BaseException as exc:
            result["error"] = exc

    runner = threading.Thread(target=run, daemon=True)
    runner.start()
    runner.join(timeout=seconds)
    assert not runner.is_alive(), f"the Ray run did not end in {seconds} s"
    if "error" in result:
        raise result["error"]
    return result["value"]


def _cluster_cpus() -> float:
    return float(ray.cluster_resources()["CPU"])


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
                         workers=2, options=IndexOptions.of(dead_letter=dead, **options))  # fmt: skip

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
                            str(tiny_st_dir), workers=1,
                            options=IndexOptions.of(**options))  # fmt: skip
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
                           str(tiny_st_dir),
                           options=IndexOptions(id_field="doc", text_fields=("body",)))  # fmt: skip
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
                                           str(tiny_st_dir), workers=2,
                                           options=IndexOptions(batch_size=10),
                                           cpus_per_worker=_cluster_cpus() / 4)  # fmt: skip
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
    """As the issue ran it: Parquet, the packaged model, two workers that ask for every CPU
    (`--workers 2` on two cores): one worker runs, the run ends, and a line says so."""
    monkeypatch.setenv("ES_URL", es_server.config.url or "")
    _, parquet = _write_inputs(tmp_path, _docs(24))
    report_file = tmp_path / "report.json"
    every_cpu = f"{ray.cluster_resources()['CPU'] / 2:g}"
    result = _within(300, lambda: CliRunner().invoke(cli, [
        "index", index_name, str(parquet), "--engine", "ray", "--workers", "2",
        "--cpus-per-worker", every_cpu,
        "--metadata-field", "lang", "--report-json", str(report_file), "--quiet",
        "--dead-letter", str(tmp_path / "dead.jsonl"),
    ]))  # fmt: skip
    assert result.exit_code == 1, result.output  # one bad row: exit 1, as the local engine
    assert "running 1 worker" in result.output, result.output
    report = json.loads(report_file.read_text(encoding="utf-8"))
    assert (report["indexed"], report["failed"], report["total"]) == (24, 1, 25)
    hits = es.search(index=index_name, query={"match": {"title": "title 7"}}, size=1)
    assert hits["hits"]["hits"][0]["_id"] == "d7"
    info = es.indices.get_mapping(index=index_name)[index_name]["mappings"]["_meta"]
    assert "MiniLM" in json.dumps(info)  # the packaged model, not the tiny one
    scores = _knn(es, index_name, Encoder(), "document 5 about subject 5", k=3)
    assert max(scores, key=scores.__getitem__) == "d5"
    assert (tmp_path / "dead.jsonl").read_text(encoding="utf-8").count("\n") == 1


def test_workers_that_take_every_cpu_still_end(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """`--workers 2` on a 2-core machine: the pool holds every CPU, the read task none."""
    _, parquet = _write_inputs(tmp_path, _docs(60))
    cpus = _cluster_cpus()
    caplog.set_level("WARNING", logger="es_semantic.distributed")
    report = _within(240, lambda: index_files(
        [str(parquet)], es_server.config, index_name, str(tiny_st_dir), workers=2,
        cpus_per_worker=cpus / 2, options=IndexOptions(batch_size=16)))  # fmt: skip
    assert (report.indexed, report.failed, report.total) == (60, 1, 61)
    assert len(_stored(es, index_name)) == 60
    said = [r.getMessage() for r in caplog.records if r.name.startswith("es_semantic")]
    assert any("1 worker" in line and "CPU" in line for line in said), said


def test_a_plan_the_cluster_cannot_hold_fails_in_one_line(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    jsonl, _ = _write_inputs(tmp_path, _docs(5))
    cpus = _cluster_cpus()
    with pytest.raises(ConfigError) as raised:
        _within(120, lambda: index_files([str(jsonl)], es_server.config, index_name,
                                         str(tiny_st_dir), cpus_per_worker=cpus + 1))  # fmt: skip
    message = str(raised.value)
    assert "\n" not in message and f"{cpus + 1:g} CPU" in message and f"{cpus:g} CPU" in message
    with pytest.raises(ConfigError, match="GPU"):
        _within(120, lambda: index_files([str(jsonl)], es_server.config, index_name,
                                         str(tiny_st_dir), gpus_per_worker=1))  # fmt: skip
    assert not es.indices.exists(index=index_name)  # failed before anything was written


def _fail_bulk(number: int) -> Any:
    """Answer the ``number``-th _bulk request with a 500 (a stopping error, never retried)."""
    seen = {"n": 0}
    lock = threading.Lock()

    def rule(method: str, path: str, body: bytes, headers: Any) -> tuple[int, Any] | None:
        if not path.split("?")[0].endswith("_bulk"):
            return None
        with lock:
            seen["n"] += 1
            if seen["n"] != number:
                return None
        error = {"type": "internal_server_error", "reason": "injected: shard failure"}
        return 500, {"error": {"root_cause": [error], **error}, "status": 500}

    return rule


def test_a_batch_that_stops_the_run_loses_no_other_batchs_report(
    local_ray: None, es: Elasticsearch, es_server: ServerHandle, index_name: str,
    tiny_st_dir: Path, tmp_path: Path,
) -> None:  # fmt: skip
    """One bulk fails while the other actor's batches run: every record read is counted once,
    and the index holds exactly the documents the report counts as indexed."""
    docs = _docs(300)
    jsonl, _ = _write_inputs(tmp_path, docs)
    dead = tmp_path / "stopped.dead.jsonl"
    cpus = _cluster_cpus()
    with fault_proxy(es_server.config.url or "", _fail_bulk(5)) as proxy:
        config = replace(es_server.config, url=proxy.url)
        with pytest.raises(IndexingError) as raised:
            _within(300, lambda: index_files([str(jsonl)], config, index_name,
                                             str(tiny_st_dir), workers=2,
                                             cpus_per_worker=cpus / 4,
                                             options=IndexOptions(batch_size=10,
                                                                  dead_letter=dead)))  # fmt: skip
    assert proxy.injected == 1
    report = raised.value.report
    assert report is not None
    assert report.indexed + report.skipped + report.failed == 302  # 300 documents, 2 bad lines
    letters = [json.loads(line) for line in dead.read_text(encoding="utf-8").splitlines()]
    assert len(letters) == report.failed
    failed_ids = {letter["document"]["id"] for letter in letters
                  if isinstance(letter["document"], dict) and "id" in letter["document"]}  # fmt: skip
    stored = _stored(es, index_name)
    assert set(stored) == {d["id"] for d in docs} - failed_ids
    assert len(stored) == report.indexed
    reasons = {letter["reason"] for letter in letters}
    assert any("internal_server_error" in reason for reason in reasons), reasons
    assert "not sent: indexing stopped" in reasons  # the batches after the stop were not sent
    assert f"{report.indexed} documents were indexed" in str(raised.value)
