"""The indexing promise, by property: whatever the input (bad bytes, bad rows, empty and long
texts, JSONL or CSV) and whatever goes wrong (bulk 429s, 500s, dropped connections, an encoder
that fails on one document or from some call on), in either indexer, every record read ends as
indexed, skipped or failed exactly once; the dead-letter file holds exactly the failures, and
the index exactly the indexed documents. Seeded (``derandomize``) and bounded."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import threading
import uuid
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from es_semantic import Encoder, Indexer
from es_semantic.config import ESConfig
from es_semantic.elastic.client import make_client
from es_semantic.errors import IndexingError
from es_semantic.indexing.async_indexer import AsyncIndexer
from es_semantic.indexing.readers import read_path
from tests.integration.fault_proxy import RESET, fault_proxy

WORDS = "alpha beta gamma delta search engine index vector passage model query".split()
POISON = "unencodable"


@st.composite
def scenarios(draw: st.DrawFn) -> dict:
    fmt = draw(st.sampled_from(["jsonl", "csv"]))
    kinds = ["ok", "ok", "ok", "long", "empty", "badbytes"] + (
        ["badjson"] if fmt == "jsonl" else []
    )
    records = draw(st.lists(st.sampled_from(kinds), min_size=1, max_size=30))
    return {
        "fmt": fmt,
        "records": records,
        "poisoned": draw(st.integers(0, len(records) - 1)),  # a text the encoder cannot take
        "bulk_faults": draw(
            st.lists(st.sampled_from(["pass", "429", "500", "reset"]), min_size=1, max_size=5)
        ),
        "encoder_fault": draw(st.sampled_from([None, "one", "from-call"])),
        "fault_call": draw(st.integers(1, 6)),
        "batch_size": draw(st.integers(1, 8)),
        "senders": draw(st.integers(1, 3)),
        "engine": draw(st.sampled_from(["sync", "async"])),
    }


def _text(kind: str, i: int, poisoned: int) -> str:
    words = [WORDS[(i * 3 + j) % len(WORDS)] for j in range(3 + i % 7)]
    if kind == "long":
        words = words * 120
    if i == poisoned:
        words.append(POISON)
    return "" if kind == "empty" else " ".join(words)


def _write_input(path, scenario: dict) -> set[str]:
    """The input file; returns the ids of the records that are valid documents."""
    valid: set[str] = set()
    out = io.BytesIO()
    if scenario["fmt"] == "csv":
        out.write(b"id,text\n")
    for i, kind in enumerate(scenario["records"]):
        doc_id, text = f"d{i}", _text(kind, i, scenario["poisoned"])
        if scenario["fmt"] == "jsonl":
            line = json.dumps({"id": doc_id, "text": text}).encode()
            if kind == "badjson":
                line = line[:-5]
        else:
            buffer = io.StringIO()
            csv.writer(buffer, lineterminator="\n").writerow([doc_id, text])
            line = buffer.getvalue().rstrip("\n").encode()
        if kind == "badbytes":
            line = line[:6] + b"\xff\xfe" + line[6:]
        if kind in ("ok", "long"):
            valid.add(doc_id)
        out.write(line + b"\n")
    path.write_bytes(out.getvalue())
    return valid


def _bulk_rule(faults: list[str]):
    lock, seen = threading.Lock(), {"n": 0}
    answers = {
        "429": (429, {"error": {"type": "es_rejected_execution_exception", "reason": "busy"},
                      "status": 429}),
        "500": (500, {"error": {"type": "node_failure", "reason": "boom"}, "status": 500}),
        "reset": (RESET, None),
    }  # fmt: skip

    def rule(method, path, body, headers):
        if not path.split("?")[0].endswith("_bulk"):
            return None
        with lock:
            n, seen["n"] = seen["n"], seen["n"] + 1
        fault = faults[n] if n < len(faults) else "pass"
        return answers.get(fault)

    return rule


def _faulty_encoder(encoder: Encoder, scenario: dict) -> Encoder:
    real, calls = encoder.embed, {"n": 0}

    def embed(texts, **kwargs):
        calls["n"] += 1
        if scenario["encoder_fault"] == "one" and any(POISON in t for t in texts):
            raise ValueError("tokenizer: cannot encode this text")
        if scenario["encoder_fault"] == "from-call" and calls["n"] >= scenario["fault_call"]:
            raise RuntimeError("out of memory")
        return real(texts, **kwargs)

    encoder.embed = embed  # type: ignore[method-assign]
    return encoder


def _counted(records: Iterator) -> tuple[Iterator, dict]:
    read = {"n": 0}

    def gen():
        for record in records:
            read["n"] += 1
            yield record

    return gen(), read


def _index(scenario: dict, url: str, index: str, encoder: Encoder, path, dead):
    options = {
        "batch_size": scenario["batch_size"], "senders": scenario["senders"],
        "dead_letter": dead, "initial_backoff": 0.01, "max_backoff": 0.05, "max_retries": 3,
    }  # fmt: skip
    if scenario["engine"] == "sync":
        client = make_client(ESConfig(url=url)).options(max_retries=1)
        indexer = Indexer(client, index, encoder, **options)
        records, read = _counted(read_path(str(path), scenario["fmt"], indexer.field_spec()))
        try:
            return indexer.index(records), read["n"]
        except IndexingError as exc:
            return exc.report, read["n"]
        finally:
            client.close()

    async def go():
        from elasticsearch import AsyncElasticsearch

        aes = AsyncElasticsearch(url, max_retries=1)
        options.pop("senders")
        indexer = AsyncIndexer(aes, index, encoder, **options)
        records, read = _counted(read_path(str(path), scenario["fmt"], await indexer.field_spec()))
        try:
            return await indexer.index(records), read["n"]
        except IndexingError as exc:
            return exc.report, read["n"]
        finally:
            await aes.close()

    return asyncio.run(go())


@pytest.fixture(scope="module")
def tiny_encoder_dir(tiny_st_dir):
    return tiny_st_dir


@settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(scenario=scenarios())
def test_every_record_read_is_accounted_for_once(es, es_server, tiny_encoder_dir, tmp_path,
                                                 scenario):  # fmt: skip
    index = f"test-prop-{uuid.uuid4().hex[:12]}"
    folder = tmp_path / uuid.uuid4().hex[:8]
    folder.mkdir()
    path, dead = folder / f"input.{scenario['fmt']}", folder / "dead.jsonl"
    valid = _write_input(path, scenario)
    encoder = _faulty_encoder(Encoder(tiny_encoder_dir), scenario)
    try:
        with fault_proxy(es_server.config.url, _bulk_rule(scenario["bulk_faults"])) as proxy:
            report, read = _index(scenario, proxy.url, index, encoder, path, dead)
        assert report is not None
        assert report.indexed + report.skipped + report.failed + report.deduplicated == read
        letters = [json.loads(x) for x in dead.read_text().splitlines()] if dead.exists() else []
        assert len(letters) == report.failed
        es.indices.refresh(index=index)
        hits = es.search(index=index, size=100, source=False)["hits"]["hits"]
        stored = {h["_id"] for h in hits}
        assert len(stored) == report.indexed
        assert stored <= valid
        dead_ids = {d["document"].get("id") for d in letters if isinstance(d["document"], dict)}
        assert not stored & dead_ids
    finally:
        es.options(ignore_status=404).indices.delete(index=index)
