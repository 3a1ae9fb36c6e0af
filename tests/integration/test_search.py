"""Search with the packaged MiniLM on the real ES-API server: every mode, filters, paging, async."""

from __future__ import annotations

import asyncio
import uuid

import elasticsearch
import pytest

from es_semantic import AsyncSearcher, CrossEncoder, Indexer, Searcher
from es_semantic.elastic.client import make_async_client
from es_semantic.errors import InputError, SearchError
from tests.integration.corpus import DOCS, EXPECTED
from tests.integration.fault_proxy import fault_proxy, refuse_rrf

CLIENT_MAJOR = int(elasticsearch.__versionstr__.split(".")[0])

pytestmark = pytest.mark.slow
INDEX = f"test-search-minilm-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="module")
def search_index(es, minilm):
    es.options(ignore_status=404).indices.delete(index=INDEX)
    # one vector per document here: server-side fusion (which gives no best passage) is
    # planned for unchunked indices only; test_passages covers the default passage layout
    report = Indexer(
        es, INDEX, minilm, metadata_fields={"lang": "keyword", "year": "long"},
        index_options="flat", chunking="none",
    ).index(DOCS)  # fmt: skip
    assert report.indexed == len(DOCS)
    yield INDEX
    es.indices.delete(index=INDEX)


# Paraphrases without shared words ("sleep", "photosynthesis") are not keyword cases.
CASES = [
    (m, q, e)
    for q, e in EXPECTED.items()
    for m in ("keyword", "knn", "hybrid")
    if not (m == "keyword" and e in ("sleep", "photosynthesis"))
]


@pytest.mark.parametrize(("mode", "query", "expected"), CASES)
def test_each_mode_finds_the_answer(es, search_index, minilm, mode, query, expected):
    result = Searcher(es, search_index, minilm).search(query, mode=mode, k=3)
    assert result.hits[0].id == expected, [h.id for h in result.hits]
    assert result.mode == mode


def test_hybrid_hits_keep_both_legs(es, search_index, minilm):
    result = Searcher(es, search_index, minilm).search(
        "boil spaghetti", mode="hybrid", fusion="rrf", k=5
    )
    top = result.hits[0]
    assert top.id == "pasta" and set(top.scores) == {"keyword", "knn", "rrf"}
    assert top.ranks == {"keyword": 1, "knn": 1}


def test_filters_restrict(es, search_index, minilm):
    searcher = Searcher(es, search_index, minilm)
    for mode in ("keyword", "knn", "hybrid"):
        result = searcher.search("thé feuilles eau chaude", mode=mode, k=5, filters={"lang": "fr"})
        assert [h.id for h in result.hits] == ["tea-fr"]
    recent = searcher.search(
        "energy from the sun", mode="knn", k=10, filters={"year": {"gte": 2022}}
    )
    assert recent.hits and all(h.source["year"] >= 2022 for h in recent.hits)
    assert any("fewer than" in w for w in recent.warnings)
    exact = searcher.search(
        "energy from the sun", mode="knn", k=3, exact=True, filters={"year": {"gte": 2022}}
    )
    assert [h.id for h in exact.hits] == [h.id for h in recent.hits[:3]]
    with pytest.raises(InputError, match="cannot filter on 'author'"):
        searcher.search("x", filters={"author": "me"})


@pytest.mark.parametrize(
    ("mode", "fusion"),
    [("keyword", "auto"), ("knn", "auto"), ("hybrid", "rrf"), ("hybrid", "server")],
)
def test_pages_are_disjoint(es, search_index, minilm, mode, fusion, request):
    if fusion == "server":
        request.getfixturevalue("server_fusion")  # skips on a basic-licence cluster
    searcher = Searcher(es, search_index, minilm)
    query = "how to cook and bake at home"
    pages = [
        searcher.search(query, mode=mode, fusion=fusion, k=4, offset=o).hits for o in (0, 4, 8)
    ]
    ids = [h.id for page in pages for h in page]
    assert len(ids) == len(set(ids)) and len(pages[0]) == 4
    whole = searcher.search(query, mode=mode, fusion=fusion, k=12).hits
    if mode != "keyword":
        assert ids == [h.id for h in whole][: len(ids)]


def test_client_and_server_rrf_agree(es, search_index, minilm, server_fusion):
    searcher = Searcher(es, search_index, minilm)
    for query in EXPECTED:
        server = searcher.search(query, mode="hybrid", fusion="server", k=10, window=20)
        client = searcher.search(query, mode="hybrid", fusion="rrf", k=10, window=20)
        assert server.fusion == "server-rrf" and client.fusion == "rrf"
        assert [h.score for h in server.hits] == pytest.approx(
            [h.score for h in client.hits], abs=1e-6
        )
        assert {h.id for h in server.hits} == {h.id for h in client.hits}


def test_weighted_extremes_equal_single_legs(es, search_index, minilm):
    searcher = Searcher(es, search_index, minilm)
    query = "home solar electricity"
    knn = [h.id for h in searcher.search(query, mode="knn", k=12).hits]
    only_knn = [
        h.id for h in searcher.search(query, mode="hybrid", fusion="weighted", alpha=1.0, k=12).hits
    ]
    assert only_knn == knn


def test_async_matches_sync(es, es_server, search_index, minilm):
    sync = Searcher(es, search_index, minilm)

    async def run():
        aes = make_async_client(es_server.config)
        try:
            searcher = AsyncSearcher(aes, search_index, minilm)
            return await asyncio.gather(
                *(searcher.search(q, mode="hybrid", fusion="rrf", k=5) for q in EXPECTED)
            )
        finally:
            await aes.close()

    for query, result in zip(EXPECTED, asyncio.run(run()), strict=True):
        expected = sync.search(query, mode="hybrid", fusion="rrf", k=5)
        assert [h.id for h in result.hits] == [h.id for h in expected.hits]


def test_auto_with_nothing_stored_fuses_adaptively(es, search_index, minilm):
    result = Searcher(es, search_index, minilm).search("boil spaghetti", mode="hybrid", k=3)
    assert result.fusion == "adaptive" and result.hits[0].id == "pasta"
    assert set(result.hits[0].scores) == {"keyword", "knn", "adaptive"}


def test_licence_refusal_falls_back_to_client_fusion_once(es, es_server, index_name, minilm):
    from es_semantic.config import ESConfig
    from es_semantic.elastic.calls import run
    from es_semantic.elastic.client import make_client
    from es_semantic.evaluation.saved import save_tuning_steps
    from es_semantic.schema.tuning import Tuning

    # auto tries the rrf retriever where the index's stored tuning is RRF
    Indexer(es, index_name, minilm, chunking="none").index(DOCS)
    run(es, save_tuning_steps(index_name, Tuning("rrf", rank_constant=60)))

    # a cluster whose licence cannot be read (no _license API, or no monitor privilege):
    # the rrf retriever is tried once; the licence refusal is remembered
    def unknown_licence_refusing_rrf(method, path, body, headers):
        if path.split("?")[0] == "/_license":
            return 403, {"error": {"type": "security_exception", "reason": "unauthorized"},
                         "status": 403}  # fmt: skip
        return refuse_rrf(method, path, body, headers)

    with fault_proxy(es_server.config.url, unknown_licence_refusing_rrf) as proxy:
        client = make_client(ESConfig(url=proxy.url))
        searcher = Searcher(client, index_name, minilm)
        first = searcher.search("boil spaghetti", mode="hybrid", k=3)
        assert first.fusion == "rrf" and first.hits[0].id == "pasta"
        assert proxy.injected == 2  # the licence look-up and one rrf attempt
        second = searcher.search("bake bread", mode="hybrid", k=3)
        assert second.fusion == "rrf" and second.hits[0].id == "bread"
        assert proxy.injected == 2  # cached: no second rrf attempt
        client.close()


def test_rerank_reorders_and_budget_flags(es, search_index, minilm, tiny_cross_encoder_dir):
    reranker = CrossEncoder(tiny_cross_encoder_dir)
    searcher = Searcher(es, search_index, minilm, reranker=reranker)
    result = searcher.search(
        "boil spaghetti", mode="hybrid", fusion="rrf", k=5, rerank=True, rerank_top=8
    )
    assert result.reranked and all("rerank" in h.scores for h in result.hits)
    scores = [h.scores["rerank"] for h in result.hits]
    assert scores == sorted(scores, reverse=True)
    passages = [" ".join([h.source["title"], h.source["text"]]) for h in result.hits]
    assert scores == pytest.approx(reranker.score("boil spaghetti", passages).tolist(), abs=1e-5)
    late = searcher.search(
        "boil spaghetti", mode="hybrid", k=5, rerank=True, rerank_top=12, rerank_budget_ms=0.001
    )
    assert not late.reranked and any("budget" in w for w in late.warnings)


def test_one_searcher_shared_by_threads(es, search_index, minilm):
    from concurrent.futures import ThreadPoolExecutor

    searcher = Searcher(es, search_index, minilm)
    queries = list(EXPECTED) * 3
    serial = [
        [h.id for h in searcher.search(q, mode="hybrid", fusion="rrf", k=5).hits] for q in queries
    ]
    with ThreadPoolExecutor(max_workers=4) as pool:
        parallel = list(
            pool.map(
                lambda q: [h.id for h in searcher.search(q, mode="hybrid", fusion="rrf", k=5).hits],
                queries,
            )
        )
    assert parallel == serial


def test_highlights_and_source_selection(es, search_index, minilm):
    result = Searcher(es, search_index, minilm).search(
        "spaghetti", mode="keyword", k=1, highlight=True, source=["title"]
    )
    hit = result.hits[0]
    assert hit.id == "pasta" and set(hit.source) == {"title"}
    assert any("<em>spaghetti</em>" in frag for frag in hit.highlights["text"])


def test_basic_licence_cluster_never_gets_a_licensed_retriever(es_server, search_index, minilm):
    """Against a basic-licence 8.19 (the proxy answers as one does): auto and linear fuse on
    the client without sending the rrf/linear retriever; server fusion fails in one line."""
    from es_semantic.config import ESConfig
    from es_semantic.elastic.client import make_client
    from tests.integration.basic_cluster import BasicCluster

    if CLIENT_MAJOR >= 9:
        pytest.skip("a 9.x client cannot talk to 8.19: see test_client_major_against_8x")
    rule = BasicCluster(es_server.config.url)
    with fault_proxy(es_server.config.url, rule) as proxy:
        client = make_client(ESConfig(url=proxy.url))
        searcher = Searcher(client, search_index, minilm)
        auto = searcher.search("boil spaghetti", mode="hybrid", k=3)
        linear = searcher.search("bake bread", mode="hybrid", fusion="linear", k=3)
        assert (auto.fusion, auto.hits[0].id) == ("adaptive", "pasta")
        assert (linear.fusion, linear.hits[0].id) == ("weighted", "bread")
        assert rule.refused == {}  # nothing licensed was even tried
        with pytest.raises(SearchError, match=r"enterprise or trial licence; .* basic"):
            searcher.search("bake bread", mode="hybrid", fusion="server", k=3)
        assert rule.refused == {}
        client.close()


def test_the_basic_licence_proxy_refuses_like_elasticsearch(es_server, search_index):
    """The emulation itself: a licensed retriever gets the 403 body, in _msearch only the
    refused item fails, and a 9.x client's header gets the 400 an 8.x cluster sends."""
    import urllib.error
    import urllib.request

    from elasticsearch import ApiError

    from es_semantic.config import ESConfig
    from es_semantic.elastic.client import make_client
    from tests.integration.basic_cluster import BasicCluster

    rule = BasicCluster(es_server.config.url)
    with fault_proxy(es_server.config.url, rule) as proxy:
        client = make_client(ESConfig(url=proxy.url), check=False)
        if CLIENT_MAJOR >= 9:  # this client's own headers are refused, as by a real 8.19
            with pytest.raises(ApiError, match="media_type_header_exception"):
                client.info()
            return
        assert client.info()["version"]["number"] == "8.19.3"
        assert client.license.get()["license"]["type"] == "basic"
        rrf = {"rrf": {"retrievers": [{"standard": {"query": {"match_all": {}}}},
                                      {"standard": {"query": {"match_all": {}}}}]}}  # fmt: skip
        with pytest.raises(ApiError) as refused:
            client.search(index=search_index, retriever=rrf)
        assert refused.value.meta.status == 403
        assert "Reciprocal Rank Fusion" in str(refused.value)
        resp = client.msearch(
            searches=[
                {"index": search_index},
                {"retriever": rrf},
                {"index": search_index},
                {"query": {"match_all": {}}},
            ]
        )
        first, second = resp["responses"]
        assert first["status"] == 403 and second["hits"]["total"]["value"] > 0
        assert rule.refused == {"Reciprocal Rank Fusion (RRF)": 2}
        # what the 9.x client sends: an 8.x cluster refuses it
        nine = "application/vnd.elasticsearch+json; compatible-with=9"
        request = urllib.request.Request(proxy.url + "/", headers={"Accept": nine})
        with pytest.raises(urllib.error.HTTPError) as wrong_client:
            urllib.request.urlopen(request, timeout=10)
        assert wrong_client.value.code == 400
        assert "media_type_header_exception" in wrong_client.value.read().decode()
        client.close()


def test_client_major_against_8x(es_server):
    """8.x client: talks to an 8.19 cluster. 9.x client: refused by it (as Elasticsearch 8
    refuses compatible-with=9), and the CLI says in one line which client to install."""
    from click.testing import CliRunner

    from es_semantic.cli import cli
    from tests.integration.basic_cluster import BasicCluster

    with fault_proxy(es_server.config.url, BasicCluster(es_server.config.url)) as proxy:
        result = CliRunner().invoke(cli, ["info", "no-such-index", "--es-url", proxy.url])
    lines = result.stderr.strip().splitlines()
    assert result.exit_code == 1 and len(lines) == 1, result.output
    if CLIENT_MAJOR >= 9:
        assert "pip install 'elasticsearch>=8.13,<9'" in lines[0]
    else:
        assert "does not exist" in lines[0]  # it got through to the index look-up
