"""The Ray engine's pure parts: records as rows, batch summaries, options; no Ray needed."""

from __future__ import annotations

import builtins
import json
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from es_semantic.cli import cli
from es_semantic.config import ESConfig
from es_semantic.distributed import Resources
from es_semantic.distributed.engine import _Run, require_ray
from es_semantic.distributed.rows import (
    add_summary,
    record_to_row,
    row_to_record,
    summary_row,
    summary_total,
    to_records,
)
from es_semantic.errors import ConfigError, MissingDependencyError
from es_semantic.indexing.options import IndexOptions
from es_semantic.indexing.readers import FieldSpec, read_path, resolve_format
from es_semantic.types import Document, FailedDocument, IndexReport, ReadFailure


def test_records_survive_the_trip_as_rows() -> None:
    doc = Document("7", {"title": "Ünïcode", "text": "body"}, {"tags": ["a", "b"], "n": 3}, "f:2")
    bad = ReadFailure("f:3", "invalid JSON at column 2", "{oops")
    for record in (doc, bad):
        row = record_to_row(record)
        assert all(value is None or isinstance(value, str) for value in row.values())
        assert row_to_record(row) == record
    # a content-hashed document (no id) keeps None
    assert row_to_record(record_to_row(Document(None, {"text": "x"}, {}, "f:4"))).id is None


def test_a_users_rows_are_mapped_like_the_local_engine_maps_them() -> None:
    spec = FieldSpec("doc", ("body",), ("lang",))
    rows = [{"doc": "a", "body": "text a", "lang": "en"}, {"doc": "b", "body": None}]
    records = list(to_records(rows, ["doc", "body", "lang"], spec, "s3://bucket/x"))
    assert records[0] == Document("a", {"body": "text a"}, {"lang": "en"}, "s3://bucket/x (id a)")
    assert isinstance(records[1], ReadFailure) and records[1].origin == "s3://bucket/x (id b)"
    assert "no text" in records[1].reason


def test_summaries_add_up_to_one_report() -> None:
    first = IndexReport("ix", indexed=5, skipped=2, encoded=5, passages=6, encode_seconds=1.5)
    letter = FailedDocument("f:9", "mapper_parsing_exception", {"id": "9"})
    row = summary_row(first, [json.dumps(letter.to_json())], None)
    second = summary_row(IndexReport("ix", skipped=4), [], None)
    total = IndexReport("ix")
    letters = add_summary(total, row) + add_summary(total, second)
    assert (total.indexed, total.skipped, total.encoded, total.passages) == (5, 6, 5, 6)
    assert total.encode_seconds == 1.5
    assert letters == [letter.to_json()]
    assert summary_total(row) == 8 and summary_total(second) == 4


def test_resources_and_local_only_options_are_refused_with_a_reason() -> None:
    with pytest.raises(ConfigError, match="workers"):
        Resources(workers=0)
    assert Resources(2, 1.0, 0.5).remote_args() == {"num_cpus": 1.0, "num_gpus": 0.5}
    assert (Resources(1, 2.0).calls_per_actor(), Resources(1, 1.0, 1.0).calls_per_actor()) == (1, 2)
    config = ESConfig(url="http://localhost:9200")
    with pytest.raises(ConfigError, match="local engine"):
        _Run(config, "ix", None, None, IndexOptions(track_ids=True), Resources())
    with pytest.raises(ConfigError, match="duplicates"):
        _Run(config, "ix", None, None, IndexOptions(dedupe_threshold=0.9), Resources())


def test_the_pool_leaves_room_for_reading_or_is_clamped_or_refused() -> None:
    two_cores = {"CPU": 2.0, "memory": 1e9}
    # fits as asked: the pool and the reading share stay within the cluster
    assert Resources(1, 1.0).fit(two_cores, 0.25) == (Resources(1, 1.0), None)
    assert Resources(2, 0.875).fit(two_cores, 0.25) == (Resources(2, 0.875), None)
    assert Resources(4, 2.0, 1.0).fit({"CPU": 16.0, "GPU": 4.0}, 1.0)[1] is None
    # `--workers 2` on two cores: the pool would hold every CPU, so one worker runs, and
    # the line says why and what runs both
    fitted, said = Resources(2, 1.0).fit(two_cores, 0.25)
    assert fitted == Resources(1, 1.0) and said is not None
    assert "2 CPU" in said and "running 1 worker" in said
    assert "--cpus-per-worker 0.875 or less runs all 2" in said
    assert Resources(2, 0.875).fit(two_cores, 0.25)[0].workers == 2  # the hint holds
    # a thirds split is rounded down, never up past the cluster
    said = Resources(3, 1.0).fit(two_cores, 0.0)[1] or ""
    assert "--cpus-per-worker 0.666 or less" in said
    # GPUs bound the pool too
    fitted, said = Resources(3, 1.0, 1.0).fit({"CPU": 32.0, "GPU": 2.0}, 1.0)
    assert fitted.workers == 2 and said is not None and "1 GPU do not fit" in said
    # not even one worker fits: one line naming what is there and what is asked
    for resources, cluster, named in [
        (Resources(1, 3.0), two_cores, ("has 2 CPU", "needs 3 CPU")),
        (Resources(1, 1.0), {"CPU": 1.0}, ("has 1 CPU", "reading 0.25 CPU")),
        (Resources(1, 1.0, 1.0), two_cores, ("0 GPU", "1 GPU")),
    ]:
        with pytest.raises(ConfigError) as raised:
            resources.fit(cluster, 0.25)
        assert "\n" not in str(raised.value) and all(n in str(raised.value) for n in named)


def test_a_stopped_run_names_the_whole_runs_count() -> None:
    """A worker's stop carries its reason; the driver words the one error with the whole
    run's count, as the local engine does."""
    from es_semantic.indexing.batch import stopped_error

    batch = stopped_error("ix", "ConnectionError: node gone", IndexReport("ix", indexed=3), [])
    assert "3 documents were indexed" in str(batch) and batch.reason == "ConnectionError: node gone"
    run = stopped_error("ix", batch.reason, IndexReport("ix", indexed=120), [])
    message = str(run)
    assert "120 documents were indexed" in message and "3 documents" not in message
    assert "ConnectionError: node gone" in message and "re-run the same command" in message
    assert run.report.indexed == 120


def test_missing_ray_names_the_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(MissingDependencyError, match=r"pip install 'es-semantic\[ray\]'"):
        require_ray()


def test_ray_options_need_the_ray_engine(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"id": "1", "text": "x"}\n', encoding="utf-8")
    result = CliRunner().invoke(cli, ["index", "ix", str(path), "--workers", "2"])
    assert result.exit_code == 2 and "--engine ray" in result.output
    result = CliRunner().invoke(cli, ["index", "ix", str(path), "--engine", "ray",
                                      "--delete-missing"])  # fmt: skip
    assert result.exit_code == 2 and "--engine local" in result.output


def test_a_beir_folder_resolves_to_its_corpus(tmp_path: Path) -> None:
    folder = tmp_path / "beir"
    folder.mkdir()
    (folder / "corpus.jsonl").write_text('{"_id": "a", "text": "x"}\n', encoding="utf-8")
    path, fmt, spec = resolve_format(str(folder), None, FieldSpec())
    assert (path, fmt, spec.id_field) == (str(folder / "corpus.jsonl"), "jsonl", "_id")


def test_parquet_rows_with_their_row_numbers(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    import datetime

    rows = [
        {"id": "1", "text": "one", "day": datetime.date(2026, 1, 2), "tags": ["x"]},
        {"id": "2", "text": None, "day": None, "tags": []},
        {"id": "3", "text": "three", "day": datetime.date(2026, 3, 4), "tags": ["y", "z"]},
    ]
    path = tmp_path / "d.parquet"
    pq.write_table(pa.Table.from_pylist(rows), path, row_group_size=2)
    records = list(read_path(str(path), None, FieldSpec(None, ("text",), ("day", "tags"))))
    assert records[0] == Document("1", {"text": "one"}, {"day": "2026-01-02", "tags": ["x"]},
                                  f"{path}:row 1")  # fmt: skip
    assert isinstance(records[1], ReadFailure) and records[1].origin == f"{path}:row 2"
    assert records[2].origin == f"{path}:row 3" and records[2].metadata["tags"] == ["y", "z"]
    from es_semantic.indexing.readers import count_records

    assert count_records(str(path), None) == 3


def test_a_broken_parquet_file_is_named(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    from es_semantic.errors import InputError

    with pytest.raises(InputError, match=r"broken\.parquet: not a readable Parquet file"):
        list(read_path(str(path), None, FieldSpec()))


def test_a_threshold_of_zero_is_refused_on_ray_and_near_duplicates_are_counted() -> None:
    """0.0 is a valid cosine threshold, so it is refused like any other; a batch's
    near-duplicate counts travel back to the driver's report."""
    from es_semantic.distributed.rows import add_summary, summary_row, summary_total
    from es_semantic.indexing.options import IndexOptions

    with pytest.raises(ConfigError, match="dedupe"):
        IndexOptions(dedupe_threshold=0.0, dedupe="skip").refuse_local_only()
    batch = IndexReport("ix", indexed=3, deduplicated=2, flagged=1)
    row = summary_row(batch, [], None)
    total = IndexReport("ix")
    add_summary(total, row)
    assert (total.indexed, total.deduplicated, total.flagged) == (3, 2, 1)
    assert summary_total(row) == 5
