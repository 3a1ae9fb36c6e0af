import pytest

from es_semantic.cluster import ClusterInfo
from es_semantic.config import EncoderConfig
from es_semantic.errors import InputError
from es_semantic.schema.contract import IndexContract
from es_semantic.schema.filters import build_filters, parse_cli_filters
from es_semantic.search import queries
from es_semantic.search.core import plan_search
from es_semantic.search.request import SearchRequest

C = IndexContract.from_encoder(
    EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3),
    metadata_fields={"lang": "keyword", "year": "long"},
    chunking="none",
)
V = [0.1, 0.2, 0.3]
LICENSED = ClusterInfo.from_responses(
    {"version": {"number": "8.19.3"}}, {"license": {"type": "enterprise", "status": "active"}}
)
BASIC = ClusterInfo.from_responses(
    {"version": {"number": "8.19.3"}}, {"license": {"type": "basic", "status": "active"}}
)


def test_keyword_body_golden():
    body = queries.keyword_body(
        "hello world", C, size=10, offset=20, filters=[{"term": {"lang": "en"}}]
    )
    assert body == {
        "query": {
            "bool": {
                "must": [
                    {
                        "multi_match": {
                            "query": "hello world",
                            "fields": ["title", "text"],
                            "type": "best_fields",
                            "tie_breaker": 0.5,
                        }
                    }
                ],
                "filter": [{"term": {"lang": "en"}}],
            }
        },
        "size": 10,
        "from": 20,
        "_source": {"excludes": ["embedding"]},
        "track_total_hits": True,
    }


def test_knn_body_golden():
    body = queries.knn_body(V, C, size=10, offset=10, filters=[{"term": {"lang": "en"}}])
    assert body == {
        "knn": {
            "field": "embedding",
            "query_vector": V,
            "k": 20,
            "num_candidates": 200,
            "filter": [{"term": {"lang": "en"}}],
        },
        "size": 10,
        "from": 10,
        "_source": {"excludes": ["embedding"]},
    }
    assert queries.default_num_candidates(1) == 100
    assert queries.default_num_candidates(5000) == 10_000


def test_exact_knn_body_scores_like_knn():
    body = queries.exact_knn_body(V, C, size=5)
    script = body["query"]["script_score"]["script"]
    assert script["source"] == "(cosineSimilarity(params.query_vector, 'embedding') + 1.0) / 2.0"
    assert script["params"] == {"query_vector": V}


def test_rrf_retriever_golden():
    body = queries.rrf_body(
        ("keyword", "knn"),
        C,
        query="q",
        vector=V,
        sparse=None,
        size=10,
        window=50,
        filters=[{"term": {"lang": "en"}}],
    )
    rrf = body["retriever"]["rrf"]
    assert rrf["rank_constant"] == 60 and rrf["rank_window_size"] == 50
    standard, knn = rrf["retrievers"]
    assert standard["standard"]["filter"] == [{"term": {"lang": "en"}}]
    assert standard["standard"]["query"]["multi_match"]["query"] == "q"
    assert knn["knn"]["k"] == 50 and knn["knn"]["filter"] == [{"term": {"lang": "en"}}]


def test_plan_modes():
    req = SearchRequest("q", mode="hybrid", k=10)
    assert list(plan_search(req, C, V, cluster=LICENSED).bodies) == ["rrf"]
    client = plan_search(req, C, V)
    assert list(client.bodies) == ["keyword", "knn"] and client.fusion == "rrf"
    assert client.bodies["keyword"]["size"] == 100  # the fusion window
    forced = plan_search(SearchRequest("q", fusion="weighted"), C, V, cluster=LICENSED)
    assert forced.fusion == "weighted"
    assert plan_search(SearchRequest("q", mode="keyword"), C, None, cluster=LICENSED).fusion is None


HOSTILE = [
    "*",
    '"',
    "AND OR NOT",
    '{"script": {"source": "System.exit(0)"}}',
    "x" * 10_000,
    "a\x00b\x07c",
    "中文 English русский العربية",
    "title:foo OR text:(bar)",
    "\\",
    "field:*",
]


def _walk(node, path=()):
    """Every (path, key or value) in a request body."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield path, key
            yield from _walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _walk(value, (*path, i))
    else:
        yield path, node


UNSAFE_KEYS = {"script", "script_score", "query_string", "simple_query_string", "source"}


@pytest.mark.parametrize("text", HOSTILE)
@pytest.mark.parametrize("cluster", [BASIC, LICENSED], ids=["client-fusion", "server-fusion"])
@pytest.mark.parametrize("fusion", ["auto", "linear"])
def test_hostile_queries_stay_plain_match_text(text, cluster, fusion):
    req = SearchRequest(text, mode="hybrid", fusion=fusion)
    plan = plan_search(req, C, V, cluster=cluster)
    places = []
    for body in plan.bodies.values():
        items = list(_walk(body))
        assert not UNSAFE_KEYS & {k for _, k in items if isinstance(k, str)}, body
        places += [path for path, value in items if value == req.query]
    # the user text sits in exactly one place, as multi_match's query, and nowhere else
    assert len(places) == 1 and places[0][-2:] == ("multi_match", "query"), places
    assert "\x00" not in req.query


def test_the_injection_check_catches_a_script():
    body = {"query": {"script_score": {"query": {"match_all": {}}, "script": {"source": "x"}}}}
    assert UNSAFE_KEYS & {k for _, k in _walk(body) if isinstance(k, str)}


@pytest.mark.parametrize("text", ["", "   ", "\x00\x01", "y" * 10_001])
def test_empty_or_huge_query_is_a_clear_error(text):
    with pytest.raises(InputError, match="query is"):
        SearchRequest(text)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"k": 0}, "k=0 must be an integer from 1 to 10000"),
        ({"k": 10_001}, "k=10001"),
        ({"mode": "semantic"}, "mode='semantic' is not one of keyword, knn, sparse, hybrid"),
        ({"alpha": 2.0}, "alpha=2.0"),
        ({"offset": -1}, "offset=-1"),
    ],
)
def test_request_validation(kwargs, message):
    with pytest.raises(InputError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SearchRequest("q", **kwargs)


def test_filters():
    assert parse_cli_filters(["lang=en", "lang=fr", "year>=2020", "year<2024", "tag?"]) == {
        "lang": ["en", "fr"],
        "year": {"gte": "2020", "lt": "2024"},
        "tag": {"exists": True},
    }
    assert build_filters({"lang": ["en", "fr"], "year": {"gte": 2020}}, ["lang", "year"]) == [
        {"terms": {"lang": ["en", "fr"]}},
        {"range": {"year": {"gte": 2020}}},
    ]
    with pytest.raises(InputError, match="cannot filter on 'author': filterable fields are lang"):
        build_filters({"author": "x"}, ["lang"])
    with pytest.raises(InputError, match="not FIELD=VALUE"):
        parse_cli_filters(["no operator"])
    with pytest.raises(InputError, match="range filter"):
        build_filters({"year": {"between": 1}}, ["year"])


NESTED = IndexContract.from_encoder(
    EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3),
    metadata_fields={"lang": "keyword"},
    chunking="nested",
)


def test_nested_knn_searches_passages_and_asks_for_the_best_one():
    body = queries.knn_body(V, NESTED, size=5, filters=[{"term": {"lang": "en"}}])
    knn = body["knn"]
    assert knn["field"] == "passages.embedding" and knn["k"] == 5
    assert knn["filter"] == [{"term": {"lang": "en"}}]  # top-level metadata: a pre-filter
    assert knn["inner_hits"] == {"size": 1, "_source": False, "fields": ["passages.text"]}
    assert body["_source"] == {"excludes": ["passages"]}


def test_nested_exact_knn_is_a_max_scored_nested_script():
    body = queries.exact_knn_body(V, NESTED, size=3, filters=[{"term": {"lang": "en"}}])
    nested = body["query"]["bool"]["must"][0]["nested"]
    assert nested["path"] == "passages" and nested["score_mode"] == "max"
    script = nested["query"]["script_score"]["script"]
    assert "'passages.embedding'" in script["source"]
    assert body["query"]["bool"]["filter"] == [{"term": {"lang": "en"}}]


def test_nested_hybrid_fuses_client_side_unless_server_is_asked():
    request = SearchRequest("q", mode="hybrid")
    plan = plan_search(request, NESTED, V, cluster=LICENSED)
    assert plan.fusion == "rrf" and "inner_hits" in plan.bodies["knn"]["knn"]
    forced = plan_search(SearchRequest("q", fusion="server"), NESTED, V, cluster=LICENSED)
    knn = forced.bodies["rrf"]["retriever"]["rrf"]["retrievers"][1]["knn"]
    assert "inner_hits" not in knn and knn["field"] == "passages.embedding"


def test_best_passage_comes_from_the_inner_hit():
    from es_semantic.search.core import assemble

    response = {
        "took": 3,
        "hits": {
            "total": {"value": 1, "relation": "eq"},
            "hits": [
                {
                    "_id": "d1",
                    "_score": 0.9,
                    "_source": {"text": "whole document", "lang": "en"},
                    "inner_hits": {
                        "passages": {
                            "hits": {
                                "hits": [
                                    {
                                        "_id": "d1",
                                        "_nested": {"field": "passages", "offset": 7},
                                        "_score": 0.9,
                                        "fields": {"passages": [{"text": ["the best passage"]}]},
                                    }
                                ]
                            }
                        }
                    },
                }
            ],
        },
    }
    request = SearchRequest("q", mode="knn")
    plan = plan_search(request, NESTED, V)
    result = assemble(request, NESTED, plan, {"knn": response}, {})
    (hit,) = result.hits
    assert hit.passage == "the best passage" and hit.to_json()["passage"] == "the best passage"
    assert hit.source == {"text": "whole document", "lang": "en"}


def _enterprise(number: str) -> ClusterInfo:
    return ClusterInfo.from_responses(
        {"version": {"number": number}}, {"license": {"type": "enterprise", "status": "active"}}
    )


# Both 8.19 and 9.3 document rescore_vector on the knn retriever (and on the top-level knn)
@pytest.mark.parametrize("number", ["8.19.3", "9.3.0"])
@pytest.mark.parametrize("fusion", ["auto", "linear"])
def test_server_fusion_knn_leg_carries_the_oversample(number, fusion):
    request = SearchRequest("q", fusion=fusion, alpha=0.6, oversample=2.5)
    plan = plan_search(request, C, V, cluster=_enterprise(number))
    assert plan.fusion == ("server-rrf" if fusion == "auto" else "server-linear")
    if fusion == "auto":
        knn = plan.bodies["rrf"]["retriever"]["rrf"]["retrievers"][1]["knn"]
    else:
        knn = plan.bodies["linear"]["retriever"]["linear"]["retrievers"][1]["retriever"]["knn"]
    assert knn == {
        "field": "embedding",
        "query_vector": V,
        "k": 100,
        "num_candidates": 1000,
        "rescore_vector": {"oversample": 2.5},
    }
    # the same request fused by the client rescoring the same way
    client = plan_search(request, C, V, cluster=BASIC).bodies["knn"]["knn"]
    assert client["rescore_vector"] == {"oversample": 2.5}


def test_fusion_bodies_without_oversample_send_no_rescore_vector():
    for body in (
        queries.rrf_body(
            ("keyword", "knn"), C, query="q", vector=V, sparse=None, size=10, window=50
        ),
        queries.linear_body("q", V, C, size=10, window=50, alpha=0.5),
    ):
        assert "rescore_vector" not in str(body)
    rrf = queries.rrf_body(
        ("keyword", "knn"), C, query="q", vector=V, sparse=None, size=10, window=50, oversample=4.0
    )
    assert rrf["retriever"]["rrf"]["retrievers"][1]["knn"]["rescore_vector"] == {"oversample": 4.0}
