"""es-semantic migrate on the real ES-API server: tiny model -> packaged MiniLM behind an alias,
with searches running throughout; the eval gate; resuming; --drop-old."""

from __future__ import annotations

import json
import threading
import time

import pytest
from click.testing import CliRunner
from elasticsearch import ApiError

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.errors import ConfigError, IndexingError
from es_semantic.indexing.admin import read_contract
from es_semantic.migration import migrator
from es_semantic.migration.migrator import EvalGate, MigrationRefused, migrate
from tests.integration.corpus import DOCS, EXPECTED
from tests.integration.migration_fixtures import alias_on_index

QUERIES = {f"q{i}": q for i, q in enumerate(EXPECTED)}
QRELS = {f"q{i}": {doc: 1} for i, doc in enumerate(EXPECTED.values())}
LONG = {
    "id": "long",
    "title": "Harbour notes",
    "text": " ".join(f"Note {i} on tides, boats and nets." for i in range(120))
    + " The ferry to the island leaves at noon.",
    "lang": "en",
}


@pytest.fixture
def live(es, index_name, tiny):
    """``{index_name}-v1`` built with the tiny model, queried through alias ``index_name``."""
    return alias_on_index(es, index_name, tiny, [*DOCS, LONG])


def _search_loop(searcher, stop, outcomes):
    queries = [*EXPECTED, "ferry to the island"]
    i = 0
    while not stop.is_set():
        query = queries[i % len(queries)]
        try:
            result = searcher.search(query, mode="hybrid", k=3)
            outcomes.append((query, len(result.hits), searcher.encoder.config.model_name))
        except Exception as exc:  # the test fails on any
            outcomes.append((query, exc, None))
        i += 1


@pytest.mark.slow
def test_migrate_tiny_to_minilm_while_searching(es, live, tiny, minilm):
    alias, old = live
    searcher = Searcher(es, alias, [tiny, minilm])  # an app that knows both models
    stop, outcomes = threading.Event(), []
    loop = threading.Thread(target=_search_loop, args=(searcher, stop, outcomes))
    loop.start()
    try:
        gate = EvalGate(QUERIES, QRELS, old_encoder=tiny, mode="knn", max_drop=0.0)
        report = migrate(es, alias, minilm, gate=gate, chunking="nested", chunk_tokens=64)
        after_swap = len(outcomes)
        while len(outcomes) < after_swap + 5:  # keep searching after the swap
            threading.Event().wait(0.05)
    finally:
        stop.set()
        loop.join()
    errors = [o for o in outcomes if not isinstance(o[1], int)]
    assert not errors, errors[:3]
    assert all(n > 0 for _, n, _ in outcomes), "a search came back empty"
    models = [m for _, _, m in outcomes]
    assert models[0] != models[-1] and models[-1] == minilm.config.model_name
    # the swap happened, atomically, to the new index; the old one is intact
    assert report.swapped and report.copy.indexed == len(DOCS) + 1
    assert report.copy.chunked == 1 and report.gate.passed and report.gate.new > report.gate.old
    assert list(es.indices.get_alias(name=alias).body) == [report.new_index]
    assert es.count(index=old)["count"] == len(DOCS) + 1
    assert read_contract(es, old).model_fingerprint == tiny.config.fingerprint
    new = read_contract(es, report.new_index)
    assert new.model_fingerprint == minilm.config.fingerprint and new.chunk_tokens == 64
    assert dict(new.metadata_fields) == {"lang": "keyword"}  # carried from the old index
    hit = Searcher(es, alias, minilm).search("ferry to the island", mode="knn", k=1).hits[0]
    assert hit.id == "long" and "ferry" in (hit.passage or "")
    assert es.get(index=report.new_index, id="pasta")["_source"]["lang"] == "en"
    # a re-run finds the work done; --drop-old then deletes the old index
    again = migrate(es, alias, minilm, chunking="nested", chunk_tokens=64, drop_old=True)
    assert not again.swapped and again.dropped == old
    assert not es.indices.exists(index=old)


def test_a_failing_gate_keeps_the_alias(es, live, minilm, tiny_bert_dir):
    alias, _ = live
    good = migrate(es, alias, minilm)  # no gate: the alias now serves MiniLM vectors
    assert good.swapped
    worse = Encoder(tiny_bert_dir, pooling="cls")  # a random model: near chance on these queries
    gate = EvalGate(QUERIES, QRELS, old_encoder=minilm, mode="knn", max_drop=0.05)
    with pytest.raises(MigrationRefused, match=r"eval gate FAILED: knn ndcg@10 old [01]\.\d+"):
        migrate(es, alias, worse, gate=gate)
    assert list(es.indices.get_alias(name=alias).body) == [good.new_index]  # unchanged


def test_an_interrupted_migration_resumes(es, live, tiny_bert_dir, monkeypatch):
    alias, old = live
    target = Encoder(tiny_bert_dir)
    real = migrator.stored_documents
    new = f"{alias}-v2"

    def broken(*args, **kwargs):
        for n, doc in enumerate(real(*args, **kwargs)):
            if n == 8:  # once the first batch has reached the new index
                for _ in range(100):
                    es.indices.refresh(index=new)
                    if es.count(index=new)["count"] >= 4:
                        break
                    time.sleep(0.1)
                raise ConnectionError("the cluster went away")
            yield doc

    monkeypatch.setattr(migrator, "stored_documents", broken)
    with pytest.raises(IndexingError, match="the cluster went away") as stopped:
        migrate(es, alias, target, new_index=new, batch_size=4, chunk_size=4)
    copied = stopped.value.report  # the stop carries the copy's report: nothing unaccounted
    assert copied.indexed + copied.skipped + copied.failed == 8  # the documents read
    assert list(es.indices.get_alias(name=alias).body) == [old]  # not swapped
    es.indices.refresh(index=new)
    first = es.count(index=new)["count"]  # the bulk requests sent before the break (4 or 8)
    assert 4 <= first <= 8
    monkeypatch.setattr(migrator, "stored_documents", real)
    report = migrate(es, alias, target, new_index=new, batch_size=4)
    assert report.copy.skipped == first and report.copy.encoded == len(DOCS) + 1 - first
    assert report.swapped and es.count(index=new)["count"] == len(DOCS) + 1


def test_migrate_refuses_a_plain_index(es, live, tiny):
    _, old = live
    with pytest.raises(ConfigError, match="is an index, not an alias"):
        migrate(es, old, tiny)


def test_migrate_cli_json(es, es_server, live, tiny_bert_dir, tiny_st_dir, tmp_path):
    alias, old = live
    queries = tmp_path / "q.jsonl"
    queries.write_text("\n".join(json.dumps({"_id": q, "text": t}) for q, t in QUERIES.items()))
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text(
        "query-id\tcorpus-id\tscore\n"
        + "".join(f"{q}\t{d}\t1\n" for q, r in QRELS.items() for d in r)
    )
    base = ["--es-url", es_server.config.url, "--model", str(tiny_bert_dir)]
    no_old_model = CliRunner().invoke(
        cli, ["migrate", "--from", alias, "--queries", str(queries), "--qrels", str(qrels), *base]
    )
    assert no_old_model.exit_code == 2 and "--old-model" in no_old_model.output
    result = CliRunner().invoke(
        cli,
        ["migrate", "--from", alias, "--to", f"{alias}-v2", "--json", "--gate-mode", "keyword",
         "--queries", str(queries), "--qrels", str(qrels), "--old-model", str(tiny_st_dir),
         *base],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["swapped"] and report["new_index"] == f"{alias}-v2"
    assert report["gate"]["passed"] and report["copy"]["indexed"] == len(DOCS) + 1
    assert es.indices.exists(index=old)


def test_a_searcher_without_the_new_model_fails_loudly_after_the_swap(
    es, live, tiny, tiny_bert_dir
):
    from es_semantic.errors import IndexContractError

    alias, _ = live
    searcher = Searcher(es, alias, tiny)
    assert searcher.search("pasta", mode="knn", k=2).hits
    other = Encoder(tiny_bert_dir, pooling="cls")  # same 32 dims: vectors would "work", wrongly
    assert other.dim == tiny.dim
    migrate(es, alias, other)
    with pytest.raises(IndexContractError, match="pooling"):
        searcher.search("pasta", mode="knn", k=2)


def test_a_query_vector_made_for_the_old_index_is_refused_after_the_swap(
    es, live, tiny, tiny_bert_dir
):
    """A precomputed query vector skips encoding, never the contract: after the alias moves
    to an index of another model (same dims), a vector made for the old one is refused, even
    by a searcher that holds both models."""
    from es_semantic.errors import IndexContractError

    alias, _ = live
    other = Encoder(tiny_bert_dir, pooling="cls")
    searcher = Searcher(es, alias, [tiny, other])
    old_vector = tiny.encode_queries(["pasta"])[0].tolist()
    assert searcher.search("pasta", mode="knn", k=2, query_vector=old_vector).hits
    migrate(es, alias, other)
    with pytest.raises(IndexContractError, match="query_vector"):
        searcher.search("pasta", mode="knn", k=2, query_vector=old_vector)
    assert searcher.search("pasta", mode="knn", k=2).hits  # text: encoded with the new model


def test_writes_during_the_backfill_are_caught_up_not_lost(
    es, live, tiny, tiny_bert_dir, monkeypatch
):
    alias, old = live
    target = Encoder(tiny_bert_dir)
    real = migrator.stored_documents
    passes = []

    def writer_meanwhile(*args, **kwargs):
        yield from real(*args, **kwargs)
        passes.append(1)
        if len(passes) == 1:  # the application writes while the first pass is finishing
            Indexer(es, alias, tiny, refresh=False).index(
                [{"id": "late", "text": "written during the migration", "lang": "en"},
                 {**DOCS[0], "text": "an edited pasta recipe"}]
            )  # fmt: skip
            es.delete(index=alias, id=DOCS[1]["id"])

    monkeypatch.setattr(migrator, "stored_documents", writer_meanwhile)
    report = migrate(es, alias, target)
    assert len(passes) == 2 and report.swapped
    assert (report.catch_up.encoded, report.catch_up.skipped) == (2, len(DOCS) - 1)
    assert report.removed_stale == 1
    new = report.new_index
    assert es.get(index=new, id="late")["_source"]["text"] == "written during the migration"
    assert es.get(index=new, id=DOCS[0]["id"])["_source"]["text"] == "an edited pasta recipe"
    assert not es.exists(index=new, id=DOCS[1]["id"])
    assert es.count(index=new)["count"] == es.count(index=old)["count"] == len(DOCS) + 1
    with pytest.raises(ApiError, match="blocked"):  # the old index is read-only now
        es.index(index=old, id="x", document={"text": "too late"})
    es.index(index=alias, id="after", document={"text": "goes to the new index"}, refresh=True)
    assert es.exists(index=new, id="after")


def test_a_writer_still_on_the_old_model_fails_loudly_after_the_swap(es, live, tiny, tiny_bert_dir):
    alias, old = live
    stale = Indexer(es, alias, tiny)  # an application's indexer, made before the migration
    assert stale.field_spec() and stale.target == old
    report = migrate(es, alias, Encoder(tiny_bert_dir))
    late = stale.index([{"id": "late", "text": "indexed with the old model", "lang": "en"}])
    assert (late.indexed, late.failed) == (0, 1) and "blocked" in late.failures[0].reason
    assert not es.exists(index=report.new_index, id="late")  # no old-model vector in the new index
    fresh = Indexer(es, alias, Encoder(tiny_bert_dir)).index([{"id": "late", "text": "now"}])
    assert fresh.indexed == 1 and es.exists(index=report.new_index, id="late")


def test_a_document_without_stored_text_is_dead_lettered_and_stops_the_swap(
    es, live, tiny, tmp_path
):
    alias, old = live
    es.index(index=old, id="no-text", document={"lang": "en"}, refresh=True)
    dead = tmp_path / "{index}.dead.jsonl"
    with pytest.raises(MigrationRefused, match="1 documents could not be copied"):
        migrate(es, alias, tiny, chunking="nested", new_index=f"{alias}-v2", dead_letter=str(dead))
    (letter,) = [
        json.loads(x) for x in (tmp_path / f"{alias}-v2.dead.jsonl").read_text().splitlines()
    ]
    assert letter["source"] == f"{old}/no-text" and "no stored text" in letter["reason"]
    assert list(es.indices.get_alias(name=alias).body) == [old]
    es.index(index=old, id="still-writable", document={"text": "the block was never set"})


def test_concurrent_writers_lose_nothing_across_the_swap(es, live, tiny, tiny_bert_dir):
    """Three threads bulk-write through the alias while a migration runs: every acknowledged
    write is in the new index afterwards, with its content; every other write was refused
    with an error (the write block), none vanished in silence."""
    alias, _ = live
    stop = threading.Event()
    acknowledged: dict[str, str] = {}
    refused: list[str] = []
    lock = threading.Lock()

    def writer(name: str) -> None:
        n = 0
        while not stop.is_set() or n < 3:
            docs = [(f"{name}-{n}-{i}", f"{name} note {n} {i} about boats") for i in range(4)]
            n += 1
            ops = []
            for doc_id, text in docs:
                ops += [{"index": {"_index": alias, "_id": doc_id}}, {"text": text, "lang": "en"}]
            try:
                items = es.bulk(operations=ops)["items"]
            except ApiError as exc:  # the whole request refused: none of it was written
                with lock:
                    refused.extend(doc_id for doc_id, _ in docs)
                assert "block" in str(exc)
                continue
            with lock:
                for (doc_id, text), item in zip(docs, items, strict=True):
                    result = item["index"]
                    if result.get("status", 500) < 300:
                        acknowledged[doc_id] = text
                    else:
                        assert "cluster_block_exception" in json.dumps(result["error"])
                        refused.append(doc_id)

    threads = [threading.Thread(target=writer, args=(f"w{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    try:
        report = migrate(es, alias, Encoder(tiny_bert_dir))
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=120)
    assert report.swapped and acknowledged
    es.indices.refresh(index=report.new_index)
    found = es.mget(index=report.new_index, ids=list(acknowledged))["docs"]
    missing = [d["_id"] for d in found if not d.get("found")]
    assert not missing, f"acknowledged writes lost in the swap: {missing}"
    assert {d["_id"]: d["_source"]["text"] for d in found} == acknowledged
    assert not set(refused) & set(acknowledged)


@pytest.mark.parametrize("mode", ["knn", "hybrid", "keyword"])
def test_an_empty_filtered_result_after_the_swap_is_not_taken_for_an_answer(
    es, live, tiny, tiny_bert_dir, mode
):
    """No hits carry no index name to notice the move by: the searcher looks at what the
    alias points at now, and a single-model searcher refuses instead of answering with its
    old model; a two-model searcher switches."""
    from es_semantic.errors import IndexContractError

    alias, old = live
    single = Searcher(es, alias, tiny)
    pair = Searcher(es, alias, [tiny, Encoder(tiny_bert_dir, pooling="cls")])
    for searcher in (single, pair):
        assert searcher.search("pasta", mode="knn", k=2).hits  # contract read: the old index
    report = migrate(es, alias, Encoder(tiny_bert_dir, pooling="cls"))
    nothing = {"lang": "no-such-language"}
    with pytest.raises(IndexContractError, match="pooling"):
        single.search("pasta", mode=mode, filters=nothing)
    assert pair.search("pasta", mode=mode, filters=nothing).hits == []
    assert pair.encoder.config.pooling == "cls" and pair.contract().pooling == "cls"
    assert report.new_index != old
