"""The MCP tools' pure core: caps refused in one sentence naming the cap, results bounded,
contracts and metadata values described, explanations per leg."""

from __future__ import annotations

import json

import pytest

from es_semantic.errors import InputError
from es_semantic.mcp_server.limits import (
    McpLimits,
    argument_error,
    argument_hints,
    check_filters,
    check_id,
    check_index,
    check_k,
    check_query,
    document_json,
    explanation,
    hit_json,
    index_json,
    value_aggregations,
)
from es_semantic.schema.contract import IndexContract
from es_semantic.types import Hit, SearchResult

LIMITS = McpLimits(max_k=5, max_query_chars=20, max_filters=2, max_filter_values=3,
                   max_value_chars=8, max_text_chars=30, snippet_chars=10)  # fmt: skip
CONTRACT = IndexContract(
    model_name="m", model_fingerprint="f", pooling="mean", normalize=True, max_length=128,
    query_prefix="", document_prefix="", dims=4, text_fields=("title", "text"),
    metadata_fields={"lang": "keyword", "year": "long", "draft": "boolean"},
)  # fmt: skip


@pytest.mark.parametrize(
    ("check", "named"),
    [
        (lambda: check_query("x" * 21, LIMITS), "21 characters; the limit is 20"),
        (lambda: check_k(6, LIMITS), "k=6 must be from 1 to 5"),
        (lambda: check_k(0, LIMITS), "k=0 must be from 1 to 5"),
        (lambda: check_index("secret-hr", ["docs", "kb"]), "not served here: use one of docs, kb"),
        (lambda: check_filters({"a": 1, "b": 2, "c": 3}, LIMITS), "3 filter fields; the limit is 2"),
        (lambda: check_filters({"a": [1, 2, 3, 4]}, LIMITS), "needs 1 to 3 values"),
        (lambda: check_filters({"a": []}, LIMITS), "needs 1 to 3 values"),
        (lambda: check_filters({"a": "x" * 9}, LIMITS), "has 9 characters; the limit is 8"),
        (lambda: check_filters({"a": {"near": 1}}, LIMITS), "takes gte, gt, lte, lt"),
        (lambda: check_query("caf\ud800", LIMITS), "query is not valid Unicode"),
        (lambda: check_filters({"a": "x\udfff"}, LIMITS), "is not valid Unicode"),
        (lambda: check_id("doc-\ud800", LIMITS), "id is not valid Unicode"),
    ],
)  # fmt: skip
def test_caps_are_one_sentence_naming_the_cap(check, named: str) -> None:
    with pytest.raises(InputError) as err:
        check()
    assert named in str(err.value) and "\n" not in str(err.value)


def test_filters_within_the_caps_pass_unchanged() -> None:
    given = {"lang": ["en", "fr"], "year": {"gte": 2020, "lt": None}}
    assert check_filters(given, LIMITS) == {"lang": ["en", "fr"], "year": {"gte": 2020}}
    assert check_filters(None, LIMITS) is None


def test_a_hit_is_clipped_and_carries_its_legs() -> None:
    hit = Hit("d1", 0.5, {"title": "A title", "text": "word " * 50, "lang": "en", "other": 1},
              scores={"keyword": 2.0, "knn": 0.9, "rrf": 0.03}, ranks={"keyword": 1, "knn": 3},
              passage="the matched passage is long enough to clip")  # fmt: skip
    shaped = hit_json(hit, CONTRACT, LIMITS)
    assert shaped["passage"] == "the matched passage is long e…" and len(shaped["passage"]) == 30
    assert shaped["snippet"] == "the match…" and shaped["title"] == "A title"
    assert shaped["metadata"] == {"lang": "en"}  # only the contract's metadata fields
    assert shaped["ranks"] == {"keyword": 1, "knn": 3} and shaped["scores"]["rrf"] == 0.03


def test_list_indices_shows_each_fields_values() -> None:
    aggs = value_aggregations(CONTRACT, McpLimits(top_values=7))
    assert aggs["values:lang"] == {"terms": {"field": "lang", "size": 7}}
    assert aggs["min:year"] == {"min": {"field": "year"}} and "values:draft" in aggs
    response = {"hits": {"total": {"value": 12}}, "aggregations": {
        "values:lang": {"buckets": [{"key": "en", "doc_count": 9}, {"key": "fr", "doc_count": 3}]},
        "values:draft": {"buckets": [{"key": 0, "key_as_string": "false", "doc_count": 12}]},
        "min:year": {"value": 2001.0}, "max:year": {"value": 2024.0}}}  # fmt: skip
    described = index_json("docs", CONTRACT, response, LIMITS)
    assert described["documents"] == 12 and described["dims"] == 4
    assert described["metadata_fields"] == {
        "lang": {"type": "keyword", "values": ["en", "fr"]},
        "year": {"type": "long", "min": 2001.0, "max": 2024.0},
        "draft": {"type": "boolean", "values": ["false"]},
    }


def test_explanation_per_leg() -> None:
    hits = [Hit("a", 0.03, ranks={"keyword": 1}, scores={"keyword": 3.0, "rrf": 0.03}),
            Hit("b", 0.02, ranks={"keyword": 4, "knn": 1},
                scores={"keyword": 1.0, "knn": 0.8, "rrf": 0.02})]  # fmt: skip
    result = SearchResult("hybrid", hits, fusion="rrf")
    why = explanation("b", result, 100, ("keyword", "knn"))
    assert why["rank"] == 2 and why["legs"] == {"keyword": {"rank": 4, "score": 1.0},
                                                "knn": {"rank": 1, "score": 0.8}}  # fmt: skip
    assert why["why"] == "rank 2 overall; keyword rank 4; knn rank 1; fused by rrf"
    only_keyword = explanation("a", result, 100, ("keyword", "knn"))
    assert "absent from the knn leg's candidates" in only_keyword["why"]
    missing = explanation("zzz", result, 100, ("keyword", "knn"))
    assert missing["found"] is False and "first 100 results" in missing["why"]


def test_metadata_in_results_is_bounded() -> None:
    """A document's metadata is whatever was indexed: a 100,000-character keyword or a list
    of 10,000 tags must not reach the agent whole (hits, get_document, list_indices)."""
    huge = {"title": "t", "text": "x", "lang": ["a" * 100_000] * 10_000, "year": 2020}
    shaped = hit_json(Hit("d1", 0.5, huge), CONTRACT, LIMITS)
    assert len(json.dumps(shaped)) < 2_000
    assert shaped["metadata"]["lang"][0] == "a" * 7 + "…" and shaped["metadata"]["year"] == 2020
    assert len(shaped["metadata"]["lang"]) == LIMITS.max_filter_values
    document = document_json("docs", {"_id": "d1", "_source": huge}, CONTRACT, LIMITS)
    assert len(json.dumps(document)) < 2_000
    single = hit_json(Hit("d2", 0.5, {"lang": "b" * 100_000}), CONTRACT, LIMITS)
    assert single["metadata"]["lang"] == "b" * 7 + "…"
    response = {"aggregations": {"values:lang": {"buckets": [{"key": "c" * 30_000}]}}}
    described = index_json("docs", CONTRACT, response, LIMITS)
    assert described["metadata_fields"]["lang"]["values"] == ["c" * 7 + "…"]


def test_names_an_agent_sends_are_capped_and_never_echoed_whole() -> None:
    """The index and the filter fields are the agent's text too: a huge one is refused in a
    short sentence (and never reaches a cluster request or an error whole)."""
    with pytest.raises(InputError) as err:
        check_index("x" * 100_000, ["docs"])
    assert len(str(err.value)) < 300 and "use one of docs" in str(err.value)
    with pytest.raises(InputError) as err:
        check_filters({"f" * 100_000: "en"}, LIMITS)
    assert len(str(err.value)) < 300 and "characters; the limit is" in str(err.value)


def test_an_argument_error_is_one_sentence_naming_the_arguments() -> None:
    hints = argument_hints(McpLimits(max_k=7), ["docs"])
    errors = [{"loc": ("k",), "type": "int_parsing"}, {"loc": ("query",), "type": "missing"}]
    assert argument_error("search", errors, hints) == (
        "search: wrong arguments (k, query): k is a whole number from 1 to 7; missing: query "
        "is plain text of 1 to 1000 characters"
    )
    assert argument_error("search", [{"loc": (), "type": "model_type"}], hints) == (
        "search: wrong arguments: an object of the tool's input schema is expected"
    )
