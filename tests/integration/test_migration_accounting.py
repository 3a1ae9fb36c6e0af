"""A refused migration carries the copy's report, as every stopped indexing run does: the
caller can tell how many documents were copied, skipped and failed without reading logs."""

from __future__ import annotations

import pytest

from es_semantic.migration.migrator import EvalGate, MigrationRefused, migrate
from tests.integration.corpus import DOCS
from tests.integration.migration_fixtures import alias_on_index


@pytest.fixture
def live(es, index_name, tiny):
    return alias_on_index(es, index_name, tiny, DOCS)


def test_failures_refuse_the_swap_with_every_document_accounted_for(es, live, tiny, tmp_path):
    alias, old = live
    es.index(index=old, id="no-text", document={"lang": "en"}, refresh=True)
    dead = tmp_path / "dead.jsonl"
    with pytest.raises(MigrationRefused) as refused:
        migrate(es, alias, tiny, chunking="none", new_index=f"{alias}-v2", dead_letter=dead)
    report = refused.value.report
    assert report is not None, "the refusal carries no report"
    assert (report.indexed, report.failed) == (len(DOCS), 1)
    assert report.dead_letter == str(dead) and len(dead.read_text().splitlines()) == 1
    assert list(es.indices.get_alias(name=alias).body) == [old]


def test_a_failed_gate_carries_the_copy_report(es, live, tiny, tiny_bert_dir):
    from es_semantic import Encoder

    alias, old = live
    worse = Encoder(tiny_bert_dir, pooling="cls")
    gate = EvalGate({"q": "anything"}, {"q": {DOCS[0]["id"]: 1}}, old_encoder=tiny,
                    mode="knn", max_drop=-1.0)  # fmt: skip
    with pytest.raises(MigrationRefused, match="eval gate FAILED") as refused:
        migrate(es, alias, worse, gate=gate, new_index=f"{alias}-v2")
    report = refused.value.report
    assert report is not None and report.indexed == len(DOCS) and report.failed == 0
    assert list(es.indices.get_alias(name=alias).body) == [old]


def test_without_a_dead_letter_file_the_refusal_says_where_the_failures_are(es, live, tiny):
    alias, old = live
    es.index(index=old, id="no-text", document={"lang": "en"}, refresh=True)
    with pytest.raises(MigrationRefused) as refused:
        migrate(es, alias, tiny, chunking="none", new_index=f"{alias}-v2")
    assert "None" not in str(refused.value) and "report" in str(refused.value)
    (failure,) = refused.value.report.failures
    assert failure.source == f"{old}/no-text"


def test_resuming_into_a_target_of_another_layout_is_refused_before_any_write(
    es, live, tiny, tiny_bert_dir
):
    """--to names this migration's own target, made with cosine; a re-run asking dot_product
    would have filled it with the old layout and swapped: it is refused, naming the option."""
    from es_semantic import Encoder
    from es_semantic.errors import ConfigError

    alias, old = live
    new = f"{alias}-v2"
    target = Encoder(tiny_bert_dir)
    gate = EvalGate({"q": "anything"}, {"q": {DOCS[0]["id"]: 1}}, old_encoder=tiny,
                    mode="knn", max_drop=-1.0)  # fmt: skip
    with pytest.raises(MigrationRefused):  # the target is made and filled, the alias stays
        migrate(es, alias, target, gate=gate, new_index=new)
    es.indices.refresh(index=new)
    before = es.count(index=new)["count"]
    with pytest.raises(ConfigError, match="similarity") as refused:
        migrate(es, alias, target, new_index=new, similarity="dot_product")
    assert "\n" not in str(refused.value) and "--to" in str(refused.value)
    assert list(es.indices.get_alias(name=alias).body) == [old]
    es.indices.refresh(index=new)
    assert es.count(index=new)["count"] == before
    assert migrate(es, alias, target, new_index=new).swapped  # the same layout resumes


def test_an_interrupted_cli_migration_says_where_the_alias_is_and_what_to_do(
    es, es_server, live, tiny_bert_dir, monkeypatch, tmp_path
):
    """Ctrl-C (or SIGTERM) mid-copy printed only 'interrupted'; the line now says the alias
    did not move and that a re-run resumes."""
    from click.testing import CliRunner

    from es_semantic.cli import cli
    from es_semantic.migration import migrator

    alias, old = live
    real = migrator.stored_documents

    def interrupted(*args, **kwargs):
        for n, doc in enumerate(real(*args, **kwargs)):
            if n == 3:
                raise KeyboardInterrupt
            yield doc

    monkeypatch.setattr(migrator, "stored_documents", interrupted)
    result = CliRunner().invoke(cli, ["migrate", "--from", alias, "--to", f"{alias}-v2",
                                      "--model", str(tiny_bert_dir), "--quiet",
                                      "--dead-letter", str(tmp_path / "dead.jsonl"),
                                      "--es-url", es_server.config.url])  # fmt: skip
    assert result.exit_code == 130, result.output
    assert f"alias {alias!r} still points at {old}" in result.output, result.output
    assert "re-run the same command to resume" in result.output
    assert list(es.indices.get_alias(name=alias).body) == [old]


def test_a_refused_drop_old_after_the_swap_says_the_alias_moved(
    es, es_server, live, tiny_bert_dir, tmp_path
):
    """The swap went through, then deleting the old index was refused (a user without the
    right): the run is not reported as a failed migration; the note says what is left."""
    from dataclasses import replace

    from es_semantic import Encoder
    from es_semantic.elastic.client import make_client
    from tests.integration.fault_proxy import fault_proxy

    alias, old = live
    forbidden = {"error": {"type": "security_exception", "reason": "action [indices:admin/delete]"
                           " is unauthorized"}, "status": 403}  # fmt: skip

    def no_delete(method, path, body, headers):
        return (403, forbidden) if method == "DELETE" and path.startswith(f"/{old}") else None

    with (
        fault_proxy(es_server.config.url or "", no_delete) as proxy,
        make_client(replace(es_server.config, url=proxy.url)) as proxied,
    ):
        report = migrate(proxied, alias, Encoder(tiny_bert_dir), new_index=f"{alias}-v2",
                         drop_old=True)  # fmt: skip
    assert report.swapped and report.dropped is None
    assert list(es.indices.get_alias(name=alias).body) == [f"{alias}-v2"]
    assert es.indices.exists(index=old)
    note = " ".join(report.notes)
    assert f"deleting {old} failed" in note and "--drop-old" in note, report.notes
