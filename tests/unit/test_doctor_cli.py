"""`es-semantic doctor` where nothing listens: one line says so, the rest still checked, exit 1."""

from __future__ import annotations

import json

from click.testing import CliRunner

from es_semantic.cli import cli

NOWHERE = "http://127.0.0.1:1"


def test_nothing_listening_is_one_line_and_exit_1(tiny_st_dir):
    result = CliRunner().invoke(cli, ["doctor", "--es-url", NOWHERE, "--model", str(tiny_st_dir)])
    assert result.exit_code == 1, result.output
    said = [line for line in result.output.splitlines() if "not reachable" in line]
    assert len(said) == 1 and said[0].split()[:2] == ["fail", "reachable"], result.output
    assert "connection refused" in said[0] and "--es-url" in said[0]
    assert "Traceback" not in result.output and "\ncluster\n" not in result.output
    assert "\nmodel\n" in result.output  # what does not need the cluster is still checked


def test_json_where_nothing_listens(tiny_st_dir):
    args = ["doctor", "--json", "--index", "docs", "--es-url", NOWHERE, "--model", str(tiny_st_dir)]
    result = CliRunner().invoke(cli, args)
    out = json.loads(result.stdout)  # stderr may hold model notes
    assert (result.exit_code, out["status"], out["exit_code"]) == (1, "fail", 1)
    failed = [c for c in out["checks"] if c["status"] == "fail"]
    assert [(c["section"], c["check"]) for c in failed] == [("connection", "reachable")]
    assert {c["section"] for c in out["checks"]} == {"connection", "model", "extras", "index docs"}
    (index,) = [c for c in out["checks"] if c["section"] == "index docs"]  # said, not dropped
    assert index["status"] == "warn" and index["detail"].startswith("not checked")
    model = {c["check"]: c for c in out["checks"] if c["section"] == "model"}
    assert model["vectors"]["value"]["dims"] == 32
