"""index --delete-missing and the migration's stale-document pass against a real ES-API
server, with the proxy answering deletes as a busy cluster does."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from click.testing import CliRunner

from es_semantic import Encoder, Indexer
from es_semantic.cli import cli
from es_semantic.elastic.client import make_client
from es_semantic.indexing import deletion
from es_semantic.migration import migrator
from es_semantic.migration.migrator import MigrationRefused, migrate
from tests.integration.corpus import DOCS
from tests.integration.fault_proxy import fault_proxy, reject_deletes
from tests.integration.migration_fixtures import alias_on_index


def _docs(ids):
    return "\n".join(json.dumps({"id": i, "text": f"the cat {i}"}) for i in ids) + "\n"


def _index(url, index, model, ids, *extra):
    return CliRunner().invoke(cli, ["index", index, "-", "--quiet", "--es-url", url, "--model",
                                    str(model), *extra], input=_docs(ids))  # fmt: skip


def test_deletes_the_cluster_refused_are_reported_and_fail_the_run(
    es, es_server, index_name, tiny_st_dir, tmp_path, monkeypatch
):
    """Every delete of the pass answered 429: the run must not say it deleted what it did
    not, and must not exit 0 with the index still holding documents the input lost."""
    monkeypatch.chdir(tmp_path)
    assert _index(es_server.config.url, index_name, tiny_st_dir, "abcd").exit_code == 0
    with fault_proxy(es_server.config.url, reject_deletes()) as proxy:
        result = _index(proxy.url, index_name, tiny_st_dir, "ab", "--delete-missing")
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == 4  # c and d are still there
    assert result.exit_code == 1, result.output
    assert "deleted 2 documents" not in result.output, result.output
    line = next(x for x in result.output.splitlines() if "could not" in x)
    assert "2" in line and "es_rejected_execution_exception" in line, result.output


def test_a_document_already_gone_is_not_a_failed_delete(es, index_name, tiny, monkeypatch):
    """A delete answered 404 (someone deleted it since the scan) leaves the input's mirror as
    wanted: it is no failure."""
    Indexer(es, index_name, tiny).index([{"id": i, "text": f"the cat {i}"} for i in "abc"])
    real_scan = deletion.helpers.scan

    def scan_then_gone(*args, **kwargs):
        hits = list(real_scan(*args, **kwargs))
        es.delete(index=index_name, id="c", refresh=True)
        yield from hits

    monkeypatch.setattr(deletion.helpers, "scan", scan_then_gone)
    report = deletion.delete_missing(es, index_name, {"a"})
    assert (report.matched, report.deleted, report.failures) == (2, 2, [])


def test_migration_does_not_swap_with_stale_documents_left(
    es, es_server, index_name, tiny, tiny_bert_dir, monkeypatch
):
    """A document deleted from the old index during the first pass must leave the new one
    before the swap; when the cluster refuses that delete, the alias must not move."""
    alias, old = alias_on_index(es, index_name, tiny, DOCS)
    real = migrator.stored_documents
    passes = []

    def deleted_meanwhile(*args, **kwargs):
        yield from real(*args, **kwargs)
        passes.append(1)
        if len(passes) == 1:
            es.delete(index=old, id=DOCS[1]["id"], refresh=True)

    monkeypatch.setattr(migrator, "stored_documents", deleted_meanwhile)
    with fault_proxy(es_server.config.url, reject_deletes()) as proxy:
        client = make_client(replace(es_server.config, url=proxy.url))
        try:
            with pytest.raises(MigrationRefused, match="could not"):
                migrate(client, alias, Encoder(tiny_bert_dir))
        finally:
            client.close()
    assert list(es.indices.get_alias(name=alias)) == [old], "the alias moved"
    blocked = es.indices.get_settings(index=old, name="index.blocks.write", flat_settings=True)
    assert blocked[old]["settings"].get("index.blocks.write", "false") == "false"


def test_behind_an_alias_only_the_index_written_to_is_mirrored(
    es, es_server, index_name, tiny_st_dir, tmp_path, monkeypatch
):
    """An alias over last year's index and this year's (its write index): the run writes to
    this year's, so only this year's documents can be missing from its input; last year's are
    neither deleted nor reported as deleted."""
    monkeypatch.chdir(tmp_path)
    old, new = f"{index_name}-2024", f"{index_name}-2025"
    url = es_server.config.url
    assert _index(url, old, tiny_st_dir, ["x", "y"]).exit_code == 0
    assert _index(url, new, tiny_st_dir, ["a", "b", "c"]).exit_code == 0
    es.indices.update_aliases(actions=[
        {"add": {"index": old, "alias": index_name}},
        {"add": {"index": new, "alias": index_name, "is_write_index": True}},
    ])  # fmt: skip
    dry = _index(url, index_name, tiny_st_dir, ["a", "b"], "--delete-missing", "--dry-run")
    assert dry.exit_code == 0 and "would delete 1 documents" in dry.output, dry.output
    real = _index(url, index_name, tiny_st_dir, ["a", "b"], "--delete-missing")
    assert real.exit_code == 0 and "deleted 1 documents" in real.output, real.output
    es.indices.refresh(index=f"{old},{new}")
    assert es.count(index=old)["count"] == 2 and es.count(index=new)["count"] == 2


def test_a_csv_quote_left_open_does_not_delete_the_rows_it_swallowed(
    es, es_server, index_name, tiny_st_dir, tmp_path, monkeypatch
):
    """A quote opened and never closed runs its field to the end of the file: the rows after
    it are no records of the input, but they were not proved gone either. The run must count
    a failure (so --delete-missing deletes nothing) instead of reading one long row."""
    monkeypatch.chdir(tmp_path)
    good = tmp_path / "docs.csv"
    good.write_text("id,text\n1,one\n2,two\n3,three\n4,four\n", encoding="utf-8")
    url, model = es_server.config.url, str(tiny_st_dir)
    args = ["index", index_name, "--quiet", "--es-url", url, "--model", model]
    assert CliRunner().invoke(cli, [*args, str(good)]).exit_code == 0
    broken = tmp_path / "edited.csv"
    broken.write_text('id,text\n1,one\n2,"two, with a quote left open\n3,three\n4,four\n',
                      encoding="utf-8")  # fmt: skip
    result = CliRunner().invoke(cli, [*args, str(broken), "--delete-missing"])
    es.indices.refresh(index=index_name)
    assert sorted(h["_id"] for h in es.search(index=index_name)["hits"]["hits"]) == list("1234")
    assert result.exit_code == 1, result.output
    assert "--delete-missing skipped" in result.output, result.output
    (dead,) = [
        json.loads(x) for x in (tmp_path / f"{index_name}.dead.jsonl").read_text().splitlines()
    ]
    assert "edited.csv:3" in json.dumps(dead) and "never closed" in json.dumps(dead), dead
