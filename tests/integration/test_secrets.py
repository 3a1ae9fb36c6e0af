"""Credentials never leave through any output, against a server that really receives them
(the proxy requires the exact Authorization header) and even quotes them back in errors."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.config import ESConfig
from es_semantic.elastic.client import make_client
from es_semantic.errors import SearchError
from es_semantic.migration.migrator import MigrationRefused, migrate
from tests.integration.fault_proxy import echo_credentials, fault_proxy

AUTH = [
    pytest.param(
        ["--api-key", "c2VjcmV0LWtleS0xMjM0NTY="], "ApiKey c2VjcmV0LWtleS0xMjM0NTY=",
        ["c2VjcmV0LWtleS0xMjM0NTY=", "secret-key-123456"], id="api-key",
    ),
    pytest.param(
        ["--username", "elastic", "--password", "pw-Zq81x"], "Basic ZWxhc3RpYzpwdy1acTgxeA==",
        ["pw-Zq81x", "ZWxhc3RpYzpwdy1acTgxeA=="], id="basic",
    ),
]  # fmt: skip


def leaks(text: str, secrets: list[str]) -> list[str]:
    return [s for s in secrets if s in text]


@pytest.mark.parametrize(("flags", "header", "secrets"), AUTH)
def test_cli_outputs_hold_no_credential(
    es_server, tiny_st_dir, index_name, tmp_path, flags, header, secrets
):
    corpus = tmp_path / "docs.jsonl"
    corpus.write_text(
        "\n".join(json.dumps({"id": str(i), "text": f"note {i} ECHO-ME"}) for i in range(3))
    )
    dead, report = tmp_path / "dead.jsonl", tmp_path / "report.json"
    with fault_proxy(es_server.config.url, echo_credentials(header)) as proxy:
        common = ["--es-url", proxy.url, "--model", str(tiny_st_dir), *flags]
        indexed = CliRunner().invoke(cli, [
            "index", index_name, str(corpus), "--dead-letter", str(dead),
            "--report-json", str(report), "--debug", *common,
        ])  # fmt: skip
        searched = CliRunner().invoke(cli, ["search", index_name, "ECHO-ME", "--debug", *common])
        evaluated = CliRunner().invoke(cli, [
            "eval", index_name, "--queries", str(_queries(tmp_path)), "--qrels",
            str(_qrels(tmp_path)), "--modes", "keyword", "--json", *common,
        ])  # fmt: skip
    assert proxy.injected >= 2  # the server quoted the credential back at least twice
    assert indexed.exit_code == 1 and searched.exit_code == 1
    letters = [json.loads(x) for x in dead.read_text().splitlines()]
    assert len(letters) == 3 and all("Authorization: ***" in d["reason"] for d in letters)
    assert json.loads(report.read_text())["failed"] == 3
    assert "Authorization: ***" in searched.output
    outputs = {
        "index output (--debug)": indexed.output,
        "search output (--debug)": searched.output,
        "eval --json": evaluated.output,
        "dead letters": dead.read_text(),
        "--report-json": report.read_text(),
    }
    assert {
        where: leaks(text, secrets) for where, text in outputs.items() if leaks(text, secrets)
    } == {}


def _queries(tmp_path):
    path = tmp_path / "queries.jsonl"
    path.write_text(json.dumps({"_id": "q1", "text": "note"}) + "\n")
    return path


def _qrels(tmp_path):
    path = tmp_path / "qrels.tsv"
    path.write_text("query-id\tcorpus-id\tscore\nq1\t1\t1\n")
    return path


@pytest.mark.parametrize("url_credentials", [False, True], ids=["api-key", "in-url"])
def test_python_api_errors_hold_no_credential(
    es, es_server, tiny_st_dir, index_name, tmp_path, url_credentials
):
    tiny = Encoder(tiny_st_dir)
    if url_credentials:
        header, secrets = "Basic dXNlcjpzM2NyZXQtWjk=", ["s3cret-Z9", "dXNlcjpzM2NyZXQtWjk="]
    else:
        header, secrets = "ApiKey a2V5LTk4NzY1NDMy", ["a2V5LTk4NzY1NDMy", "key-98765432"]
    old = f"{index_name}-v1"
    Indexer(es, old, tiny).index([{"id": "a", "text": "plain"}, {"id": "b", "text": "ECHO-ME"}])
    es.indices.put_alias(index=old, name=index_name)
    with fault_proxy(es_server.config.url, echo_credentials(header)) as proxy:
        if url_credentials:
            config = ESConfig(url=proxy.url.replace("://", "://user:s3cret-Z9@"))
        else:
            config = ESConfig(url=proxy.url, api_key="a2V5LTk4NzY1NDMy")
        client = make_client(config)
        report = Indexer(client, f"{index_name}-w", tiny, dead_letter=tmp_path / "d.jsonl").index(
            [{"id": "x", "text": "ECHO-ME please"}]
        )
        with pytest.raises(SearchError) as searched:
            Searcher(client, index_name, tiny).search("ECHO-ME", mode="keyword")
        with pytest.raises(MigrationRefused) as migrated:
            migrate(client, index_name, Encoder(tiny_st_dir, pooling="cls"),
                    dead_letter=str(tmp_path / "m.jsonl"))  # fmt: skip
        client.close()
    assert report.failed == 1 and "Authorization: ***" in report.failures[0].reason
    assert "Authorization: ***" in str(searched.value)
    texts = {
        "report": json.dumps(report.to_json()),
        "dead letters": (tmp_path / "d.jsonl").read_text(),
        "SearchError": str(searched.value),
        "MigrationRefused": str(migrated.value),
        "migration dead letters": (tmp_path / "m.jsonl").read_text(),
    }
    assert "Authorization: ***" in texts["migration dead letters"]
    assert {k: leaks(v, secrets) for k, v in texts.items() if leaks(v, secrets)} == {}
