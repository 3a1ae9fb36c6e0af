"""Each program in examples/ run as a user runs it (a subprocess, or the app in a test client),
against the session's ES-API server with the tiny model; each asserts what the program
promises (hits and filters, dead letters, exit codes, the report file, the gate)."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from es_semantic import Indexer
from es_semantic.demo.server import free_loopback_port
from tests.needs import need_module

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DOCS = [
    {"id": "pasta", "title": "Cooking pasta", "text": "Boil the spaghetti in salted water.",
     "lang": "en"},
    {"id": "pates", "title": "Cuire les pâtes", "text": "Faites bouillir les spaghetti.",
     "lang": "fr"},
    {"id": "bread", "title": "Baking bread", "text": "Knead the dough and bake it.",
     "lang": "en"},
]  # fmt: skip


def environment(es_server: Any, model: Path) -> dict[str, str]:
    """What a user's shell would export: the connection and the model."""
    env = dict(os.environ)
    config = es_server.config
    for name, value in (("ES_URL", config.url), ("ES_API_KEY", config.api_key),
                        ("ES_USERNAME", config.username), ("ES_PASSWORD", config.password),
                        ("ES_CA_CERTS", config.ca_certs)):  # fmt: skip
        if value:
            env[name] = str(value)
    env["ES_SEMANTIC_MODEL"] = str(model)
    return env


def run_example(name: str, args: list[str], env: dict[str, str], cwd: Path) -> Any:
    return subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        env=env, cwd=cwd, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def dead_letters(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_fastapi_backend(es, es_server, index_name, tiny, tiny_st_dir, tiny_bert_dir, monkeypatch):
    from fastapi.testclient import TestClient

    Indexer(es, index_name, tiny, metadata_fields={"lang": "keyword"}).index(DOCS)
    other = f"{index_name}-other-model"  # an index made with another model
    Indexer(es, other, _encoder(tiny_bert_dir)).index(DOCS)
    for name, value in environment(es_server, tiny_st_dir).items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("SEARCH_INDEX", index_name)
    spec = importlib.util.spec_from_file_location(
        "fastapi_backend", EXAMPLES / "fastapi_backend.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    with TestClient(module.app) as client:
        every = client.get("/search", params={"q": "spaghetti", "mode": "keyword"})
        assert every.status_code == 200, every.text
        assert {h["id"] for h in every.json()["hits"]} == {"pasta", "pates"}
        french = client.get("/search", params={"q": "spaghetti", "mode": "keyword", "lang": "fr"})
        assert [h["id"] for h in french.json()["hits"]] == ["pates"]
        both = client.get("/search?q=spaghetti&mode=hybrid&lang=fr&lang=en")
        assert {h["id"] for h in both.json()["hits"]} == {"pasta", "pates", "bread"}
        unknown = client.get("/search", params={"q": "spaghetti", "year": "2020"})
        assert unknown.status_code == 400
        assert "cannot filter on 'year'" in unknown.json()["error"]
        assert client.get("/search", params={"q": "", "mode": "keyword"}).status_code == 422
    module.INDEX = other  # as SEARCH_INDEX=other would: an index the model does not fit
    with TestClient(module.app) as client:
        mismatch = client.get("/search", params={"q": "spaghetti"})
        assert mismatch.status_code == 409, mismatch.text
        assert other in mismatch.json()["error"]
    monkeypatch.setenv("ES_URL", f"http://127.0.0.1:{free_loopback_port()}")  # nothing there
    with TestClient(module.app) as client:
        unreachable = client.get("/search", params={"q": "spaghetti"})
        assert unreachable.status_code == 503, unreachable.text


def _encoder(path: Path) -> Any:
    from es_semantic import Encoder

    return Encoder(path)


def test_nightly_job(es, es_server, index_name, tiny_st_dir, tmp_path):
    env = environment(es_server, tiny_st_dir)
    export = tmp_path / "export.jsonl"
    lines = [json.dumps(d) for d in DOCS] + [
        '{"id": "broken", "text": ',
        '{"id": "empty", "text": ""}',
    ]
    export.write_text("\n".join(lines) + "\n")
    report_file, dead = tmp_path / "report.json", tmp_path / "failed.jsonl"
    args = [index_name, str(export), "--report", str(report_file), "--dead-letter", str(dead),
            "--metadata-field", "lang"]  # fmt: skip

    first = run_example("nightly_job.py", args, env, tmp_path)
    assert first.returncode == 1, first.stderr
    assert "2 document(s) failed" in first.stderr, first.stderr
    report = json.loads(report_file.read_text())
    assert (report["status"], report["indexed"], report["failed"]) == ("failed", 3, 2)
    assert {d["source"] for d in dead_letters(dead)} == {f"{export}:4", f"{export}:5"}
    assert es.count(index=index_name)["count"] == 3

    again = run_example("nightly_job.py", args, env, tmp_path)  # resumes: nothing re-encoded
    assert again.returncode == 1, again.stderr
    report = json.loads(report_file.read_text())
    assert (report["indexed"], report["skipped"], report["encoded"]) == (0, 3, 0)

    export.write_text("\n".join(lines[:3]) + "\n")  # the export fixed
    clean = run_example("nightly_job.py", args, env, tmp_path)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(report_file.read_text())["status"] == "ok"

    missing = run_example("nightly_job.py", [index_name, str(tmp_path / "none.jsonl"),
                                             "--report", str(report_file)], env, tmp_path)  # fmt: skip
    assert missing.returncode == 2
    assert "no such file" in missing.stderr


def test_nightly_job_stopped_by_sigterm_accounts_for_every_record_read(
    es, es_server, index_name, tiny_st_dir, tmp_path
):
    export = tmp_path / "export.jsonl"
    count = 30_000  # far more than it can index before the signal
    export.write_text("".join(f'{{"id": "d{i}", "text": "note {i}"}}\n' for i in range(count)))
    report_file, dead = tmp_path / "report.json", tmp_path / "failed.jsonl"
    job = subprocess.Popen(
        [sys.executable, str(EXAMPLES / "nightly_job.py"), index_name, str(export),
         "--report", str(report_file), "--dead-letter", str(dead)],
        env=environment(es_server, tiny_st_dir), cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not es.indices.exists(index=index_name) and time.monotonic() < deadline:
            time.sleep(0.2)
        time.sleep(2)  # some batches on their way
        job.send_signal(signal.SIGTERM)
        _, stderr = job.communicate(timeout=120)
    finally:
        job.kill()
    assert job.returncode == 130, stderr
    report = json.loads(report_file.read_text())
    assert report["status"] == "interrupted"
    assert 0 < report["total"] < count
    assert report["indexed"] + report["failed"] == report["total"]
    assert len(dead_letters(dead)) == report["failed"]
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == report["indexed"]


def test_index_parquet(es, es_server, index_name, tiny_st_dir, tmp_path):
    pa = need_module("pyarrow", "the Parquet example reads with it (the parquet extra)")
    import pyarrow.parquet as pq

    table = pa.table({
        "doc_id": ["a", "b", "c", "d"],
        "body": ["Boil the spaghetti.", "Knead the dough.", None, "Git branches merge work."],
        "lang": ["en", "en", "en", "fr"],
        "year": [2019, 2020, 2021, 2022],
        "ignored": ["x", "y", "z", "w"],
    })  # fmt: skip
    path = tmp_path / "export.parquet"
    pq.write_table(table, path)
    dead = tmp_path / "dead.jsonl"
    args = [str(path), index_name, "--id-column", "doc_id", "--text-column", "body",
            "--metadata-column", "lang", "--metadata-column", "year:long",
            "--dead-letter", str(dead)]  # fmt: skip
    result = run_example("index_parquet.py", args, environment(es_server, tiny_st_dir), tmp_path)
    assert result.returncode == 1, result.stderr
    assert "3 indexed, 0 unchanged, 1 failed of 4 rows" in result.stdout
    assert [d["source"] for d in dead_letters(dead)] == [f"{path}:row 3"]
    source = es.get(index=index_name, id="d")["_source"]
    assert (source["lang"], source["year"], source["body"]) == (
        "fr",
        2022,
        "Git branches merge work.",
    )
    assert "ignored" not in source
    recent = es.count(index=index_name, query={"range": {"year": {"gte": 2020}}})["count"]
    assert recent == 2  # b and d: year is a long field, as asked


def test_evaluate_and_migrate(
    es, es_server, index_name, tiny, tiny_st_dir, tiny_bert_dir, tmp_path
):
    old = f"{index_name}-v1"
    Indexer(es, old, tiny, metadata_fields={"lang": "keyword"}).index(DOCS)
    es.indices.put_alias(index=old, name=index_name)
    queries, qrels = tmp_path / "queries.jsonl", tmp_path / "qrels.tsv"
    queries.write_text('{"_id": "q1", "text": "salted water"}\n{"_id": "q2", "text": "dough"}\n')
    qrels.write_text("query-id\tcorpus-id\tscore\nq1\tpasta\t1\nq2\tbread\t1\n")
    env = environment(es_server, tiny_st_dir)
    args = [index_name, "--queries", str(queries), "--qrels", str(qrels),
            "--new-model", str(tiny_bert_dir), "--report", str(tmp_path / "report.json")]  # fmt: skip

    # A gate no model can pass (the new index must beat the old by a whole nDCG point).
    refused = run_example("evaluate_and_migrate.py", [*args, "--max-drop", "-1"], env, tmp_path)
    assert refused.returncode == 1, refused.stderr
    assert "eval gate FAILED" in refused.stderr, refused.stderr
    assert list(es.indices.get_alias(name=index_name).body) == [old]
    before = json.loads((tmp_path / "report.json").read_text())["before"]
    assert set(before) == {"keyword", "knn", "hybrid"}
    assert before["keyword"]["ndcg@10"] == 1.0  # each query's one word is in its one document

    moved = run_example("evaluate_and_migrate.py", [*args, "--max-drop", "1"], env, tmp_path)
    assert moved.returncode == 0, moved.stderr
    report = json.loads((tmp_path / "report.json").read_text())["migration"]
    assert report["swapped"] and report["gate"]["passed"]
    assert list(es.indices.get_alias(name=index_name).body) == [report["new_index"]] != [old]
    assert es.count(index=report["new_index"])["count"] == len(DOCS)
