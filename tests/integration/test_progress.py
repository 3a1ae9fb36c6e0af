"""The progress bar moves while documents are encoded, before the first bulk request leaves,
and names the stage it is in (#29: it sat at 0/3000 until a whole batch was sent)."""

from __future__ import annotations

import threading
from typing import Any, ClassVar

import pytest
from tqdm import tqdm

from es_semantic.config import ESConfig
from es_semantic.elastic.client import make_client
from es_semantic.encoding.encoder import Encoder
from es_semantic.indexing import batch
from es_semantic.indexing.indexer import Indexer
from tests.integration.fault_proxy import fault_proxy

DOCS = [{"id": str(i), "text": f"note {i} on the progress of encoding"} for i in range(40)]


class RecordingBar(tqdm):  # type: ignore[type-arg]
    """A real tqdm bar that also keeps what it was told, in order, for the test to read."""

    made: ClassVar[list[RecordingBar]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.events: list[tuple[str, Any]] = []
        self.lock = threading.Lock()
        RecordingBar.made.append(self)

    def update(self, n: float | None = 1) -> bool | None:
        shown = super().update(n)
        if n:  # a step (an empty batch of skipped documents is none)
            with self.lock:
                self.events.append(("count", self.n))
        return shown

    def set_postfix_str(self, s: str = "", refresh: bool = True) -> None:
        super().set_postfix_str(s, refresh)
        with self.lock:
            self.events.append(("stage", s.split(",")[0]))

    def mark(self, what: str) -> None:
        with self.lock:
            self.events.append((what, self.n))


@pytest.fixture
def recording_bar(monkeypatch):
    RecordingBar.made = []
    monkeypatch.setattr(batch, "tqdm", RecordingBar)
    return RecordingBar.made


def test_the_bar_counts_encoded_parts_before_the_first_bulk_is_sent(
    es_server, index_name, tiny_st_dir, recording_bar
):
    def rule(method: str, path: str, body: bytes, headers: Any) -> None:
        if path.split("?", 1)[0].endswith("/_bulk") and recording_bar:
            recording_bar[0].mark("bulk")  # the request reached the cluster

    encoder = Encoder(tiny_st_dir, batch_size=2)  # one forward pass: 2 documents
    with fault_proxy(es_server.config.url, rule) as proxy:
        es = make_client(ESConfig(url=proxy.url))
        try:
            report = Indexer(es, index_name, encoder, batch_size=16, progress=True).index(DOCS)
        finally:
            es.close()
    assert (report.indexed, report.failed) == (40, 0)
    (bar,) = recording_bar
    first_bulk = next(i for i, (what, _) in enumerate(bar.events) if what == "bulk")
    counts = [n for what, n in bar.events[:first_bulk] if what == "count"]
    # the first batch of 16 was counted part by part as it was encoded: one pass of 2 first
    # (a rate within seconds), then parts of 4 passes (8 documents), then the rest
    assert counts[:3] == [2, 10, 16], bar.events
    stages = [s for what, s in bar.events if what == "stage"]
    assert stages[:3] == ["encoding", "encoding", "encoding"]
    assert {"reading", "sending"} <= set(stages) and stages[-1] == "done"
    assert bar.n == 40  # every document counted once: encoded, then indexed without a second tick


def test_parts_encoded_shortest_first_come_back_in_the_batch_order(es, index_name, tiny_bert_dir):
    """Each document keeps its own vector although its batch is encoded in parts sorted by
    length: a plain model (no prefixes) finds every document by its own text, at score 1;
    an id given twice in one batch keeps its later version."""
    from es_semantic.search.searcher import Searcher

    encoder = Encoder(tiny_bert_dir, batch_size=2)
    words = "river mountain cloud stone garden music paper window".split()
    docs = [{"id": f"d{i}", "text": " ".join(words[: 1 + (i * 5) % 8] * (1 + i % 3)) + f" {i}"}
            for i in range(20)]  # fmt: skip
    docs.append({"id": "d3", "text": "the later version of d3 wins"})
    report = Indexer(es, index_name, encoder, batch_size=32, chunking="none").index(docs)
    assert (report.indexed, report.failed) == (21, 0)
    searcher = Searcher(es, index_name, encoder)
    for doc in [*docs[:3], *docs[4:20], docs[20]]:
        (hit,) = searcher.search(doc["text"], mode="knn", k=1).hits
        assert hit.id == doc["id"], (doc, hit.id)
        assert hit.source["text"] == doc["text"]
