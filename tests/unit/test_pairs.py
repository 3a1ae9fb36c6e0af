import pytest

from es_semantic.config import EncoderConfig
from es_semantic.corpus.pairs import (
    DuplicatePair,
    best_of,
    group_pairs,
    pairs_from_response,
    probe_body,
)
from es_semantic.errors import ConfigError
from es_semantic.schema.contract import IndexContract
from es_semantic.schema.similarity import knn_threshold, pairwise, raw_similarity

ENC = EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3)
FLAT = IndexContract.from_encoder(ENC, chunking="none")
NESTED = IndexContract.from_encoder(ENC)


def test_scores_go_back_to_the_raw_similarity():
    assert raw_similarity((1 + 0.93) / 2, "cosine") == pytest.approx(0.93)
    assert raw_similarity(0.25, "l2_norm") == 0.25
    assert knn_threshold(0.9, "cosine") == 0.9
    assert knn_threshold(0.5, "l2_norm") == pytest.approx(1.0)  # 1 / (1 + d^2) = 0.5 -> d = 1
    with pytest.raises(ConfigError, match="l2_norm"):
        knn_threshold(1.5, "l2_norm")


def test_pairwise_matches_the_knn_units():
    import numpy as np

    a = np.array([[1.0, 0.0], [0.0, 2.0]], dtype=np.float32)
    b = np.array([[2.0, 0.0]], dtype=np.float32)
    assert pairwise(a, b, "cosine")[:, 0] == pytest.approx([1.0, 0.0])
    assert pairwise(a, b, "l2_norm")[:, 0] == pytest.approx([1 / 2, 1 / 9])
    assert pairwise(a, -b, "max_inner_product")[:, 0] == pytest.approx([1 / 3, 1.0])


def test_probe_leaves_the_document_out_and_cuts_at_the_threshold():
    body = probe_body([0.1, 0.2, 0.3], FLAT, exclude_id="d1", top_k=5, threshold=0.9,
                      filters=[{"term": {"lang": "en"}}], text_fields=("title", "text"))  # fmt: skip
    knn = body["knn"]
    assert knn["field"] == "embedding" and knn["similarity"] == 0.9 and knn["k"] == 5
    assert knn["filter"] == [
        {"term": {"lang": "en"}}, {"bool": {"must_not": [{"ids": {"values": ["d1"]}}]}}
    ]  # fmt: skip
    assert "inner_hits" not in knn and body["_source"] == ["title", "text"]
    nested = probe_body([0.1, 0.2, 0.3], NESTED, exclude_id="d1", top_k=5, threshold=0.9,
                        filters=[], text_fields=("text",))["knn"]  # fmt: skip
    assert nested["field"] == "passages.embedding" and nested["inner_hits"]["size"] == 1


def _hit(doc_id, score, text="t", passage=None):
    hit = {"_id": doc_id, "_score": score, "_source": {"text": text}}
    if passage is not None:
        hit["inner_hits"] = {"passages": {"hits": {"hits": [
            {"fields": {"passages": [{"text": [passage]}]}}]}}}  # fmt: skip
    return hit


def test_pairs_from_a_probe_answer():
    response = {"hits": {"hits": [_hit("a", 0.99), _hit("z", 0.97), _hit("q", 0.90),
                                  _hit("m", 0.94)]}}  # fmt: skip
    pairs = pairs_from_response("m", response, FLAT, 0.9, snippet="mine")
    # m itself is skipped; 0.90 -> cosine 0.80 is below 0.9; each pair ordered a < b
    assert [(p.a, p.b, round(p.score, 2)) for p in pairs] == [("a", "m", 0.98), ("m", "z", 0.94)]
    assert pairs[0].snippet_b == "mine" and pairs[1].snippet_a == "mine"
    nested = pairs_from_response("m", {"hits": {"hits": [_hit("a", 0.99, passage="best")]}},
                                 NESTED, 0.9, passage="my passage")  # fmt: skip
    assert (nested[0].passage_a, nested[0].passage_b) == ("best", "my passage")


def test_best_of_keeps_each_pair_once_with_its_best_score():
    pairs = [DuplicatePair("a", "b", 0.91), DuplicatePair("a", "b", 0.95),
             DuplicatePair("c", "d", 0.99)]  # fmt: skip
    assert [(p.a, p.b, p.score) for p in best_of(pairs)] == [("c", "d", 0.99), ("a", "b", 0.95)]


def test_groups_are_transitive_with_the_best_connected_representative():
    pairs = [DuplicatePair("a", "b", 0.95), DuplicatePair("b", "c", 0.92),
             DuplicatePair("x", "y", 0.99)]  # fmt: skip
    first, second = group_pairs(pairs)
    assert first.members == ["a", "b", "c"] and first.representative == "b"
    assert (first.pairs, first.best_score) == (2, 0.95)
    assert second.members == ["x", "y"] and second.representative == "x"


def test_topic_terms_and_class_based_tfidf():
    from collections import Counter

    from es_semantic.corpus.topics import ctfidf_labels, terms_of

    assert terms_of("The Garlic and the pasta, 2024!") == ["garlic", "pasta"]
    assert terms_of("检索系统 search") == ["search", "检索", "索系", "系统"]
    # a word frequent in one class and absent from the other outranks a word both share
    labels = ctfidf_labels([Counter({"goal": 5, "team": 5}), Counter({"star": 4, "team": 5})], 1)
    assert labels == [["goal"], ["star"]]


@pytest.mark.parametrize("contract", [FLAT, NESTED], ids=["flat", "nested"])
def test_the_ingest_probe_is_the_scan_probe_with_one_neighbour_and_ids_only(contract):
    """indexing.dedupe.probe_steps sends probe_body's search: k=1, no snippets, no passage."""
    import numpy as np

    from es_semantic.elastic.calls import Answer
    from es_semantic.errors import SearchError
    from es_semantic.indexing.dedupe import Match, probe_steps

    items = [("d1", np.array([[0.1, 0.2, 0.3]], dtype=np.float32)),
             ("d2", np.array([[0.3, 0.2, 0.1], [0.0, 1.0, 0.0]], dtype=np.float32))]  # fmt: skip
    steps = probe_steps("docs", contract, items, 0.9)
    searches = next(steps).kwargs["searches"]
    assert searches[0] == {"index": "docs"} and len(searches) == 6
    knn = searches[3]["knn"]
    assert knn["k"] == 1 and knn["num_candidates"] == 100 and "inner_hits" not in knn
    assert knn["query_vector"] == pytest.approx([0.3, 0.2, 0.1])
    assert knn["filter"] == [{"bool": {"must_not": [{"ids": {"values": ["d2"]}}]}}]
    assert searches[3]["size"] == 1 and searches[3]["_source"] is False
    hit = {"hits": {"hits": [{"_id": "x", "_score": (1 + 0.95) / 2}]}}
    low = {"hits": {"hits": [{"_id": "y", "_score": (1 + 0.5) / 2}]}}
    with pytest.raises(StopIteration) as done:
        steps.send(Answer({"responses": [low, low, hit]}))
    (first, second) = done.value.value
    assert first is None and second == Match("x", pytest.approx(0.95))
    failing = probe_steps("docs", contract, items[:1], 0.9)
    next(failing)
    with pytest.raises(SearchError, match="a duplicate probe on 'docs' failed"):
        failing.send(Answer({"responses": [{"error": {"type": "boom"}}]}))
