"""Every record read ends as indexed, skipped or failed exactly once, and a run always ends:
a sender failing while another waits, the encoder failing mid-run, a reader failing mid-batch,
an update that looks like a near-duplicate, a vector format the cluster cannot take."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Iterator

import pytest

from es_semantic import Encoder, Indexer
from es_semantic.config import ESConfig
from es_semantic.elastic.client import make_client
from es_semantic.errors import ConfigError, IndexingError
from es_semantic.indexing.async_indexer import AsyncIndexer
from tests.integration.fault_proxy import fault_proxy
from tests.integration.test_indexing import corpus


@pytest.fixture
def tiny(tiny_st_dir):
    return Encoder(tiny_st_dir)  # a fresh one: tests replace its methods


def _dead(path) -> list[dict]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def _stored_ids(es, index: str) -> set[str]:
    es.indices.refresh(index=index)
    hits = es.search(index=index, size=1000, source=False)["hits"]["hits"]
    return {h["_id"] for h in hits}


def _run(engine: str, es, es_server, index, encoder, docs, **options):
    """One run with the sync or the async indexer; returns the report or the raised error."""
    if engine == "sync":
        try:
            return Indexer(es, index, encoder, **options).index(docs)
        except IndexingError as exc:
            return exc

    async def go():
        from elasticsearch import AsyncElasticsearch

        aes = AsyncElasticsearch(es_server.config.url)
        try:
            return await AsyncIndexer(aes, index, encoder, **options).index(docs)
        except IndexingError as exc:
            return exc
        finally:
            await aes.close()

    return asyncio.run(go())


def test_a_sender_failing_while_another_waits_ends_the_run(
    es, es_server, index_name, tiny, tmp_path
):
    """Two senders; the one holding 'poison' gets a 500 after the last batch was handed over,
    while the other waits on its queue. The run ends (it used to wait forever) and every
    document is indexed or a dead letter."""
    docs = corpus(30)
    docs[0]["id"] = "poison"

    def slow_end() -> Iterator[dict]:
        yield from docs
        time.sleep(1.0)  # the failing bulk is answered while the producer reads on

    def fail_poison(method, path, body, headers):
        if path.split("?")[0].endswith("_bulk") and b'"poison"' in body:
            time.sleep(0.5)  # the other sender has sent its share and waits on its queue
            return 500, {"error": {"type": "node_failure", "reason": "boom"}, "status": 500}
        return None

    Indexer(es, index_name, tiny).ensure_index()
    dead = tmp_path / "dead.jsonl"
    outcome: list[object] = []
    with fault_proxy(es_server.config.url, fail_poison) as proxy:
        client = make_client(ESConfig(url=proxy.url)).options(max_retries=0)
        indexer = Indexer(client, index_name, tiny, senders=2, batch_size=30, chunk_size=1,
                          dead_letter=dead)  # fmt: skip

        def work() -> None:
            try:
                outcome.append(indexer.index(slow_end()))
            except IndexingError as exc:
                outcome.append(exc)

        worker = threading.Thread(target=work, daemon=True)
        worker.start()
        worker.join(timeout=60)
        hung = worker.is_alive()
        client.close()
    assert not hung, "Indexer.index() never returned"
    assert proxy.injected >= 1
    (error,) = outcome
    assert isinstance(error, IndexingError), error
    report = error.report
    assert report.indexed + report.failed == 30 and report.skipped == 0
    assert report.failed >= 1 and len(_dead(dead)) == report.failed
    assert "poison" in {d["document"]["id"] for d in _dead(dead)}
    assert len(_stored_ids(es, index_name)) == report.indexed


@pytest.mark.parametrize("engine", ["sync", "async"])
def test_an_encoder_failing_mid_run_loses_no_document(
    engine, es, es_server, index_name, tiny, tmp_path
):
    """The model runs out of memory from the third batch on: that batch is dead-lettered (not
    lost), what was sent before is indexed (not 'interrupted'), the run stops with the report
    and the index holds exactly the indexed ids."""
    real_embed, calls = tiny.embed, {"n": 0}

    def embed(texts, **kwargs):
        calls["n"] += 1
        if calls["n"] >= 3:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return real_embed(texts, **kwargs)

    tiny.embed = embed
    dead = tmp_path / "dead.jsonl"
    options = {"batch_size": 10, "chunking": "none", "dead_letter": dead}
    error = _run(engine, es, es_server, index_name, tiny, corpus(50), **options)
    assert isinstance(error, IndexingError), error
    assert "out of memory" in str(error)
    report = error.report
    assert (report.indexed, report.skipped, report.failed) == (20, 0, 10)  # 30 read
    assert sorted(d["document"]["id"] for d in _dead(dead)) == [f"doc-{i}" for i in range(20, 30)]
    assert sorted(_stored_ids(es, index_name)) == sorted(f"doc-{i}" for i in range(20))


@pytest.mark.parametrize(("engine", "batch_size"), [("sync", 10), ("async", 10), ("sync", 1)])
def test_one_document_the_encoder_cannot_take_is_one_dead_letter(
    engine, batch_size, es, es_server, index_name, tiny, tmp_path
):
    """A batch the encoder refuses is retried one document at a time: the one it cannot take
    is a dead letter with the model's reason, and the run goes on."""
    real_embed = tiny.embed

    def embed(texts, **kwargs):
        if any("UNTOKENISABLE" in t for t in texts):
            raise ValueError("tokenizer: invalid input")
        return real_embed(texts, **kwargs)

    tiny.embed = embed
    docs = corpus(30)
    docs[12]["text"] += " UNTOKENISABLE"  # alone in its batch when batch_size is 1
    dead = tmp_path / "dead.jsonl"
    options = {"batch_size": batch_size, "chunking": "none", "dead_letter": dead}
    report = _run(engine, es, es_server, index_name, tiny, docs, **options)
    assert not isinstance(report, Exception), report
    assert (report.indexed, report.failed) == (29, 1)
    (letter,) = _dead(dead)
    assert letter["document"]["id"] == "doc-12" and "tokenizer" in letter["reason"]
    assert len(_stored_ids(es, index_name)) == 29


@pytest.mark.parametrize("engine", ["sync", "async"])
def test_a_reader_failing_mid_batch_loses_no_record(
    engine, es, es_server, index_name, tiny, tmp_path
):
    """The input fails after 25 records (a Parquet file cut short, a dropped stream): the
    five read into the unfinished batch are dead letters, not lost."""

    def broken() -> Iterator[dict]:
        yield from corpus(25)
        raise OSError("input/output error reading corpus.parquet")

    dead = tmp_path / "dead.jsonl"
    options = {"batch_size": 10, "chunking": "none", "dead_letter": dead}
    error = _run(engine, es, es_server, index_name, tiny, broken(), **options)
    assert isinstance(error, IndexingError), error
    assert "input/output error" in str(error)
    report = error.report
    assert (report.indexed, report.failed) == (20, 5)
    assert sorted(d["document"]["id"] for d in _dead(dead)) == [f"doc-{i}" for i in range(20, 25)]


def test_dedupe_skip_never_keeps_a_stale_version(es, index_name, tiny, tmp_path):
    """An update of an indexed id whose new text duplicates another document is indexed
    (skipping it would leave the old version in the index); a new document that duplicates
    one is left out and written, whole, to the duplicates file."""
    first = [
        {"id": "a", "text": "alpha beta gamma delta"},
        {"id": "b", "text": "search engine index vector"},
    ]
    Indexer(es, index_name, tiny, chunking="none").index(first)
    dup_file = tmp_path / "dups.jsonl"
    second = [
        {"id": "a", "text": "search engine index vector"},  # a's new text is b's
        {"id": "c", "text": "search engine index vector"},  # a new copy of b
    ]
    report = Indexer(
        es, index_name, tiny, dedupe_threshold=0.95, dedupe="skip", duplicates_file=dup_file
    ).index(second)
    assert es.get(index=index_name, id="a")["_source"]["text"] == "search engine index vector"
    assert _stored_ids(es, index_name) == {"a", "b"}
    actions = {d["id"]: d["action"] for d in report.near_duplicates}
    assert actions == {"a": "updated", "c": "skipped"}
    assert (report.indexed, report.deduplicated, report.total) == (1, 1, 2)
    (kept,) = [json.loads(line) for line in dup_file.read_text().splitlines()]
    assert kept["id"] == "c" and kept["duplicate_of"] in ("a", "b")
    assert kept["document"]["text"] == "search engine index vector"
    assert report.duplicates_file == str(dup_file)


def test_base64_vectors_are_refused_before_encoding(es, es_server, index_name, tiny):
    """A cluster before 9.3 cannot parse base64 vectors: refused before a document is
    encoded or the index is created, in one line naming the version."""
    from es_semantic.cluster import ClusterInfo

    if ClusterInfo.from_responses(es.info().body, None).accepts_base64_vectors:
        pytest.skip("this server takes base64 vectors")
    encoded = {"n": 0}
    real_embed = tiny.embed

    def embed(texts, **kwargs):
        encoded["n"] += 1
        return real_embed(texts, **kwargs)

    tiny.embed = embed
    with pytest.raises(ConfigError, match=r"9\.3"):
        Indexer(es, index_name, tiny, vector_format="base64").index(corpus(5))
    assert encoded["n"] == 0
    assert not es.indices.exists(index=index_name)


def test_an_earlier_dead_letter_file_is_kept(es, index_name, tiny, tmp_path):
    """For stdin input the dead-letter file is the only copy of the failed documents: the
    next run moves it aside instead of deleting it."""
    dead = tmp_path / "docs.dead.jsonl"
    bad = [{"id": "empty", "text": ""}, *corpus(3)]
    assert Indexer(es, index_name, tiny, dead_letter=dead).index(bad).failed == 1
    assert Indexer(es, index_name, tiny, dead_letter=dead).index(corpus(3)).failed == 0
    assert not dead.exists()
    (kept,) = list(tmp_path.glob("docs.dead.*.jsonl"))
    assert [d["source"] for d in _dead(kept)] == ["input#1"]


def test_sigterm_during_index_keeps_the_report_and_every_failed_line(
    es_server, index_name, tiny_st_dir, tmp_path
):
    """`es-semantic index INDEX -` killed with SIGTERM (as `docker stop` or Kubernetes do)
    while it reads stdin: the report is written and adds up to the lines read, the failed
    line is in the dead-letter file, and the next run keeps that file (for stdin input it is
    the only copy) instead of deleting it."""
    import os
    import signal
    import subprocess
    import sys

    dead, report_file = tmp_path / "run.dead.jsonl", tmp_path / "report.json"
    command = [
        os.path.join(os.path.dirname(sys.executable), "es-semantic"), "index", index_name, "-",
        "--es-url", es_server.config.url, "--model", str(tiny_st_dir), "--batch-size", "2",
        "--dead-letter", str(dead), "--report-json", str(report_file), "--quiet",
    ]  # fmt: skip
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert process.stdin is not None
    lines = ["{broken json", *(json.dumps(d) for d in corpus(5))]
    process.stdin.write("\n".join(lines) + "\n")
    process.stdin.flush()  # stdin stays open: the run waits for more
    deadline = time.monotonic() + 60
    while not dead.exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert dead.exists(), "the first batch never ended"
    time.sleep(1.0)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130, stderr
    assert "interrupted" in stderr
    report = json.loads(report_file.read_text())
    assert report["indexed"] + report["skipped"] + report["failed"] == 6
    sources = [d["source"] for d in _dead(dead)]
    assert sources[0] == "stdin:1" and len(sources) == report["failed"]
    again = subprocess.run(command, input="", capture_output=True, text=True, timeout=120)
    assert again.returncode == 0, again.stderr
    (kept,) = list(tmp_path.glob("run.dead.*.jsonl"))
    assert _dead(kept)[0]["document"] is not None


def test_a_cancelled_async_run_stays_a_cancellation_and_keeps_its_report(
    es, es_server, index_name, tiny, tmp_path
):
    """Cancelling the task that runs AsyncIndexer.index (a timeout, a service shutting down)
    raises CancelledError in it — not an interrupt that would stop the event loop — and the
    cancellation carries the report: every record read is indexed or a dead letter."""
    from elasticsearch import AsyncElasticsearch

    read = {"n": 0}

    async def slow_docs():
        for doc in corpus(200):
            read["n"] += 1
            yield doc
            await asyncio.sleep(0.01)

    async def go():
        aes = AsyncElasticsearch(es_server.config.url)
        indexer = AsyncIndexer(aes, index_name, tiny, batch_size=10, chunking="none",
                               dead_letter=tmp_path / "dead.jsonl")  # fmt: skip
        task = asyncio.create_task(indexer.index(slow_docs()))
        await asyncio.sleep(0.5)
        task.cancel()
        try:
            await task
        except asyncio.CancelledError as exc:
            return exc
        finally:
            await aes.close()
        return None

    cancelled = asyncio.run(go())  # the loop itself survives
    assert isinstance(cancelled, asyncio.CancelledError)
    report = cancelled.report
    assert 0 < read["n"] < 200
    assert report.indexed + report.skipped + report.failed == read["n"]
    assert len(_dead(tmp_path / "dead.jsonl")) == report.failed
    assert len(_stored_ids(es, index_name)) == report.indexed


def test_a_failing_final_refresh_still_hands_back_the_report(es, es_server, index_name, tiny):
    """Every record was written when the closing refresh fails: the error says so and carries
    the report (it used to be a bare ApiError, the report lost)."""

    def fail_refresh(method, path, body, headers):
        if path.split("?")[0].endswith("/_refresh"):
            return 500, {"error": {"type": "node_failure", "reason": "boom"}, "status": 500}
        return None

    Indexer(es, index_name, tiny).ensure_index()
    with fault_proxy(es_server.config.url, fail_refresh) as proxy:
        client = make_client(ESConfig(url=proxy.url)).options(max_retries=0)
        with pytest.raises(IndexingError, match="refresh failed") as stopped:
            Indexer(client, index_name, tiny).index(corpus(12))
        client.close()
    assert stopped.value.report.indexed == 12
    assert len(_stored_ids(es, index_name)) == 12
