"""`serve --eval-report FILE`: an eval --json report or a clear error naming the file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from es_semantic.cli.serve_cmd import read_eval_report
from es_semantic.errors import InputError


def test_eval_report_is_read(tmp_path: Path) -> None:
    path = tmp_path / "report.json"
    path.write_text(json.dumps({"knn": {"ndcg@10": 0.67, "p50_ms": 9}}))
    assert read_eval_report(str(path)) == {"knn": {"ndcg@10": 0.67, "p50_ms": 9}}
    # eval --json names the encoder that ran beside the modes: not a mode of the report
    ran = {"model": "m", "backend": "openvino", "quantize": "none", "precision": "bfloat16"}
    path.write_text(json.dumps({"knn": {"ndcg@10": 0.67}, "encoder": ran}))
    assert read_eval_report(str(path)) == {"knn": {"ndcg@10": 0.67}}


@pytest.mark.parametrize(
    ("content", "message"),
    [("{not json", r"report.json:1: not JSON"), ("[1, 2]", "not an `es-semantic eval --json`"),
     ('{"knn": {"ndcg@10": "high"}}', "not an `es-semantic eval --json`"), ("{}", "not an")],
)  # fmt: skip
def test_bad_eval_report_names_the_file(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "report.json"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        read_eval_report(str(path))
