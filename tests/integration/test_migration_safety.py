"""Migration safety on the real ES-API server: --to an index that is not this migration's own
target is refused before any write; SIGTERM lifts the write block as Ctrl-C does; a write in
flight when the write block arrives reaches the new index."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from dataclasses import replace

import pytest
from click.testing import CliRunner

from es_semantic import Encoder, Indexer
from es_semantic.cli import cli
from es_semantic.elastic.client import make_client
from es_semantic.errors import ConfigError
from es_semantic.migration import migrator
from es_semantic.migration.migrator import MigrationRefused, migrate
from tests.integration.corpus import DOCS
from tests.integration.fault_proxy import (
    HoldAfterWriteBlock,
    HoldBulkAcrossBlock,
    block_not_shards_acknowledged,
    fault_proxy,
)
from tests.integration.migration_fixtures import alias_on_index


@pytest.fixture(scope="module")
def target(tiny_bert_dir):
    return Encoder(tiny_bert_dir)


@pytest.fixture
def live(es, index_name, tiny):
    """``{index_name}-v1`` built with the tiny model, queried through alias ``index_name``."""
    return alias_on_index(es, index_name, tiny, DOCS)


def _snapshot(es, index):
    """Every document of ``index`` with its sequence number: any write changes it."""
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=1000, seq_no_primary_term=True)["hits"]["hits"]
    return {h["_id"]: (h["_seq_no"], h["_source"].get("text")) for h in hits}


def _write_blocked(es, index):
    settings = es.indices.get_settings(index=index, flat_settings=True)[index]["settings"]
    return str(settings.get("index.blocks.write", "false")).lower() == "true"


def test_migrate_to_an_unrelated_index_is_refused_before_any_write(es, live, target):
    """A compatible index of another application (same model: its contract would pass) is no
    resume: its _meta records no migration of this alias, so nothing in it may change."""
    alias, old = live
    other = f"{alias}-other-app"
    docs = [{"id": "kept", "text": "another application's own document"},
            {"id": DOCS[0]["id"], "text": "the other application's pasta"}]  # fmt: skip
    assert Indexer(es, other, target).index(docs).indexed == 2
    before = _snapshot(es, other)
    with pytest.raises(ConfigError, match=rf"index '{other}' exists and is not .* migration"):
        migrate(es, alias, target, new_index=other)
    assert _snapshot(es, other) == before  # nothing deleted, nothing re-encoded
    assert list(es.indices.get_alias(name=alias).body) == [old]
    assert not _write_blocked(es, old)


def test_migrate_to_another_migrations_target_is_refused(es, live, index_name, target):
    """An index made by a migration of another alias is not this migration's target either."""
    alias, old = live
    other_alias = f"{index_name}-b"
    es.indices.put_alias(index=old, name=other_alias)
    made = migrate(es, other_alias, target, new_index=f"{other_alias}-v2")
    es.indices.put_alias(index=old, name=alias)  # the first alias, still on the old index
    assert made.swapped and list(es.indices.get_alias(name=alias).body) == [old]
    before = _snapshot(es, made.new_index)
    with pytest.raises(ConfigError, match=rf"made by the migration of alias '{other_alias}'"):
        migrate(es, alias, target, new_index=made.new_index)
    assert _snapshot(es, made.new_index) == before


def test_the_cli_refuses_an_unrelated_target_in_one_line(es, es_server, live, tiny_bert_dir):
    alias, _ = live
    other = f"{alias}-other-app"
    Indexer(es, other, Encoder(tiny_bert_dir)).index([{"id": "kept", "text": "mine"}])
    result = CliRunner().invoke(
        cli, ["migrate", "--from", alias, "--to", other, "--model", str(tiny_bert_dir),
              "--es-url", es_server.config.url or "", "--quiet"],
    )  # fmt: skip
    assert result.exit_code == 2, result.output
    (line,) = [x for x in result.output.splitlines() if x.startswith("error:")]
    assert other in line and "--to" in line
    assert es.count(index=other)["count"] == 1


def test_sigterm_while_writes_are_blocked_lifts_the_block(es, es_server, live, tiny_bert_dir):
    """`es-semantic migrate` in a subprocess, held just after it blocked writes to the old index
    (the next request waits in the proxy), then SIGTERM: the block is lifted, as on Ctrl-C."""
    alias, old = live
    rule = HoldAfterWriteBlock(old)
    with fault_proxy(es_server.config.url or "", rule) as proxy:
        proc = subprocess.Popen(
            [sys.executable, "-m", "es_semantic.cli", "migrate", "--from", alias, "--model",
             str(tiny_bert_dir), "--es-url", proxy.url, "--quiet"],
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            assert rule.held.wait(120), "the migration never blocked writes"
            assert _write_blocked(es, old)  # caught inside the freeze
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        finally:
            rule.release.set()
            if proc.poll() is None:
                proc.kill()
            output = proc.communicate()[0].decode()
    assert not _write_blocked(es, old), f"exit {code}: the old index is left write-blocked"
    assert code == 130 and "interrupted" in output, output[-2000:]
    assert list(es.indices.get_alias(name=alias).body) == [old]
    es.index(index=alias, id="after", document={"text": "the application writes again"})


def test_a_write_in_flight_when_the_block_arrives_reaches_the_new_index(
    es, es_server, live, target, monkeypatch
):
    """A bulk the cluster admitted before the write block completes after it: the freeze must
    wait for it (the add-index-block API does; a ``_settings`` block does not) so that the
    catch-up pass copies it. The write is acknowledged, so it must be in the new index."""
    alias, old = live
    upstream = es_server.config.url or ""
    rule = HoldBulkAcrossBlock(upstream, old, {alias, old}, hold_s=20)
    real, passes, writer = migrator.stored_documents, [], []
    with fault_proxy(upstream, rule) as proxy:
        client = make_client(replace(es_server.config, url=proxy.url))

        def write_as_the_first_pass_ends(*args, **kwargs):
            yield from real(*args, **kwargs)
            passes.append(1)
            if len(passes) == 1:  # the application writes; its bulk is in flight at the block
                op = [{"index": {"_id": "in-flight"}}, {"text": "admitted before the block"}]
                writer.append(threading.Thread(target=client.bulk, args=(), kwargs={
                    "index": alias, "operations": op}))  # fmt: skip
                writer[0].start()
                assert rule.held.wait(30)

        monkeypatch.setattr(migrator, "stored_documents", write_as_the_first_pass_ends)
        try:
            report = migrate(client, alias, target)
        finally:
            for thread in writer:
                thread.join(timeout=60)
            client.close()
    ((status, answer),) = rule.answers
    assert status == 200 and not answer["errors"]  # acknowledged to the application
    assert report.swapped and len(passes) == 2
    assert es.exists(index=report.new_index, id="in-flight"), "an acknowledged write was lost"


def test_a_write_block_not_acknowledged_by_every_shard_stops_before_the_swap(
    es, es_server, live, target
):
    """Without ``shards_acknowledged`` the block may not cover writes in flight: no swap, and
    the block is lifted so the application can write again."""
    alias, old = live
    upstream = es_server.config.url or ""
    with fault_proxy(upstream, block_not_shards_acknowledged(upstream, old)) as proxy:
        client = make_client(replace(es_server.config, url=proxy.url))
        try:
            with pytest.raises(MigrationRefused, match=f"write block on {old} was not ackn"):
                migrate(client, alias, target, new_index=f"{alias}-v2")
        finally:
            client.close()
    assert list(es.indices.get_alias(name=alias).body) == [old]
    assert not _write_blocked(es, old)
    assert es.indices.exists(index=f"{alias}-v2")  # kept: a re-run resumes it


def test_a_write_block_set_before_the_migration_is_left_in_place(
    es, live, tiny_bert_dir, monkeypatch
):
    """The old index was read-only before the migration (its owner's block): a migration that
    stops after its own block must not lift the owner's."""
    from es_semantic.migration import migrator as migrator_module

    alias, old = live
    es.indices.put_settings(index=old, settings={"index.blocks.write": True})
    real, calls = migrator_module._copy, {"n": 0}

    def copy_then_fail(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 2:  # the catch-up pass, after the freeze
            raise RuntimeError("the catch-up failed")
        return real(*args, **kwargs)

    monkeypatch.setattr(migrator_module, "_copy", copy_then_fail)
    try:
        with pytest.raises(RuntimeError, match="catch-up"):
            migrate(es, alias, Encoder(tiny_bert_dir))
        assert _write_blocked(es, old), "the owner's write block was lifted"
        assert list(es.indices.get_alias(name=alias).body) == [old]
    finally:
        es.indices.put_settings(index=old, settings={"index.blocks.write": False})
