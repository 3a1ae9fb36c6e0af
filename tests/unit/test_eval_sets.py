"""Retrieval sets from scored pairs: queries never find their own text, partners are relevant,
low-scored pairs are distractors; the BEIR files load back through the eval loaders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from es_semantic.errors import InputError
from es_semantic.evaluation.data import beir_paths, load_qrels, load_queries
from es_semantic.evaluation.sets import build, read_scored_pairs, retrieval_set, text_id

EN = (
    "score\tsentence1\tsentence2\tgenre\n"
    "5.000\tA man is dancing.\tA man dances.\tcaptions\n"
    "4.200\tA cat sleeps.\tThe cat is asleep.\tcaptions\n"
    "1.000\tA cat sleeps.\tA dog barks.\tcaptions\n"
    "3.999\tA woman sings.\tA girl sings a song.\tcaptions\n"
    "4.500\tThe cat is asleep.\tA cat is sleeping.\tcaptions\n"
)
ZH = "一架飞机要起飞了。\t一架飞机正在起飞。\t5\n一个小孩在骑马。\t一个小孩在骑马。\t5\n一个女人在弹吉他。\t一个人在弹吉他。\t2\n"


def test_queries_come_from_pairs_at_the_threshold_and_never_find_themselves() -> None:
    pairs = [
        ("A man is dancing.", "A man dances.", 5.0),
        ("A cat sleeps.", "The cat is asleep.", 4.0),
        ("A cat sleeps.", "A kitten naps.", 4.5),
        ("A woman sings.", "A girl sings a song.", 3.999),
        ("A dog barks.", "A man is dancing.", 0.5),
    ]
    data = retrieval_set(pairs, threshold=4.0)
    texts = {data.queries[q]: {data.corpus[d] for d in rel} for q, rel in data.qrels.items()}
    assert texts == {
        "A man is dancing.": {"A man dances."},
        "A cat sleeps.": {"The cat is asleep.", "A kitten naps."},
    }
    corpus = set(data.corpus.values())
    assert not corpus & set(data.queries.values())  # a query's own text is not retrievable
    assert corpus == {"A man dances.", "The cat is asleep.", "A kitten naps.", "A woman sings.",
                      "A girl sings a song.", "A dog barks."}  # fmt: skip
    assert data.summary() == {"pairs": 5, "documents": 6, "queries": 2, "relevant": 3,
                              "dropped_queries": 0}  # fmt: skip


def test_a_query_whose_partners_are_queries_or_itself_is_dropped_and_counted() -> None:
    pairs = [
        ("same text", "same text", 5.0),  # identical pair: no partner other than itself
        ("A cat sleeps.", "The cat is asleep.", 4.5),
        ("The cat is asleep.", "A cat is sleeping.", 4.5),  # partner of the first is a query
    ]
    data = retrieval_set(pairs)
    assert set(data.queries.values()) == {"The cat is asleep."}
    assert data.dropped_queries == 2
    assert "same text" not in data.corpus.values()
    assert set(data.corpus.values()) == {"A cat is sleeping."}


def test_ids_are_stable_text_hashes() -> None:
    a = retrieval_set([(" A b. ", "C d.", 5.0), ("x", "y", 1.0)])
    b = retrieval_set([("x", "y", 1.0), ("A b.", "C d.", 5.0)])
    assert a.qrels == b.qrels and a.corpus == b.corpus
    assert a.qrels == {text_id("q", "A b."): {text_id("d", "C d."): 1}}


@pytest.mark.parametrize(("name", "content"), [("en.tsv", EN), ("zh.tsv", ZH)])
def test_build_writes_a_beir_folder_the_eval_loaders_read(
    tmp_path: Path, name: str, content: str
) -> None:
    source = tmp_path / name
    source.write_text(content, encoding="utf-8")
    data = build(source, tmp_path / "set")
    corpus_path, queries_path, qrels_path = beir_paths(tmp_path / "set", "test")
    corpus = [json.loads(line) for line in corpus_path.read_text("utf-8").splitlines()]
    queries, qrels = load_queries(queries_path), load_qrels(qrels_path)
    assert {d["_id"]: d["text"] for d in corpus} == data.corpus
    assert queries == data.queries and qrels == data.qrels
    for qid, relevant in qrels.items():
        assert queries[qid] not in {d["text"] for d in corpus}
        assert all(doc in data.corpus for doc in relevant)
    if name == "en.tsv":  # 3.999 is below 4; the header's column order is followed
        assert sorted(queries.values()) == ["A man is dancing.", "The cat is asleep."]
        assert qrels[text_id("q", "A man is dancing.")] == {text_id("d", "A man dances."): 1}
        assert data.dropped_queries == 1  # "A cat sleeps.": its partner is a query sentence
    else:  # the identical pair gives no query; the integer-scored 2 is a distractor
        assert list(queries.values()) == ["一架飞机要起飞了。"]
        assert "一个人在弹吉他。" in data.corpus.values()


def test_read_scored_pairs_keeps_the_scores_as_written(tmp_path: Path) -> None:
    path = tmp_path / "en.tsv"
    path.write_text(EN)
    pairs = read_scored_pairs(path)
    assert pairs[0] == ("A man is dancing.", "A man dances.", 5.0) and pairs[3][2] == 3.999


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", r"t.tsv is empty"),
        ("a\tb\t5\nc\td\n", r"t.tsv:2: 2 tab-separated columns"),
        ("score\tsentence1\tsentence2\nhigh\ta\tb\n", r"t.tsv:2: score 'high' is not a number"),
        ("a\t \t5\n", r"t.tsv:1: sentence1 and sentence2 must be non-empty"),
        ("a\tb\t1\n", r"no pair scores >= 4 .* lower --threshold"),
    ],
)
def test_bad_pair_files_name_the_file_and_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "t.tsv"
    path.write_text(content)
    with pytest.raises(InputError, match=message):
        build(path, tmp_path / "out")
