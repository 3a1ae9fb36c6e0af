import math
import random

import pytest

from es_semantic.evaluation.metrics import (
    ap_at,
    evaluate,
    mrr_at,
    ndcg_at,
    parse_metric,
    percentile,
    recall_at,
)
from es_semantic.evaluation.tuning import split_queries

RELS = {"d1": 1, "d3": 2}
RANKED = ["d2", "d1", "d3"]


def test_hand_computed():
    dcg = 1 / math.log2(3) + 2 / math.log2(4)
    idcg = 2 / math.log2(2) + 1 / math.log2(3)
    assert ndcg_at(RANKED, RELS, 10) == pytest.approx(dcg / idcg)
    assert ndcg_at(RANKED, RELS, 10) == pytest.approx(0.619907, abs=1e-6)
    assert recall_at(RANKED, RELS, 1) == 0.0 and recall_at(RANKED, RELS, 10) == 1.0
    assert mrr_at(RANKED, RELS, 10) == 0.5 and mrr_at(RANKED, RELS, 1) == 0.0
    assert ap_at(RANKED, RELS, 10) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert ap_at(RANKED, RELS, 2) == pytest.approx((1 / 2) / 2)


def test_missing_runs_count_as_zero_and_non_relevant_grades_ignored():
    qrels = {"q1": {"a": 1}, "q2": {"b": 1, "c": 0}}
    scores = evaluate({"q1": ["a"]}, qrels)
    assert scores["ndcg@10"] == 0.5 and scores["recall@100"] == 0.5


def test_parse_and_percentile():
    assert parse_metric("map@100") == ("map", 100)
    with pytest.raises(ValueError):
        parse_metric("p@x")
    assert percentile([5, 1, 3, 2, 4], 0.5) == 3
    assert percentile([1, 2, 3, 4], 0.95) == 4
    assert percentile([], 0.5) == 0.0


def test_split_is_deterministic_and_complete():
    qrels = {str(i): {"d": 1} for i in range(200)}
    tune, test = split_queries(qrels)
    assert set(tune) | set(test) == set(qrels) and not set(tune) & set(test)
    assert 60 < len(tune) < 140
    assert split_queries(qrels) == (tune, test)


def test_agrees_with_ir_measures_on_random_runs():
    ir_measures = pytest.importorskip("ir_measures")
    rng = random.Random(3)
    docs = [f"d{i}" for i in range(60)]
    qrels = {
        f"q{q}": {d: rng.choice([0, 1, 1, 2, 3]) for d in rng.sample(docs, rng.randint(1, 12))}
        for q in range(40)
    }
    run = {q: rng.sample(docs, rng.randint(5, 60)) for q in qrels}
    ours = evaluate(run, qrels)
    measures = [
        ir_measures.nDCG @ 10,
        ir_measures.R @ 100,
        ir_measures.RR @ 10,
        ir_measures.AP @ 100,
    ]
    qrels_list = [ir_measures.Qrel(q, d, r) for q, rels in qrels.items() for d, r in rels.items()]
    run_list = [
        ir_measures.ScoredDoc(q, d, float(len(ranked) - i))
        for q, ranked in run.items()
        for i, d in enumerate(ranked)
    ]
    theirs = ir_measures.calc_aggregate(measures, qrels_list, run_list)
    assert ours["ndcg@10"] == pytest.approx(theirs[ir_measures.nDCG @ 10], abs=1e-6)
    assert ours["recall@100"] == pytest.approx(theirs[ir_measures.R @ 100], abs=1e-6)
    assert ours["mrr@10"] == pytest.approx(theirs[ir_measures.RR @ 10], abs=1e-6)
    assert ours["map@100"] == pytest.approx(theirs[ir_measures.AP @ 100], abs=1e-6)
