"""Topic clusters over an index with the packaged MiniLM on the real ES-API server."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.corpus.clusters import cluster_index

pytestmark = pytest.mark.slow
TOPICS = {
    "cooking": (["chef", "soup", "oven", "recipe", "garlic", "pasta", "sauce", "bread"],
                "{a} and {b} make a simple {c} dinner in the kitchen."),
    "football": (["goal", "striker", "league", "referee", "stadium", "match", "penalty", "coach"],
                 "The {a} argued with the {b} after the {c} in the second half."),
    "astronomy": (["telescope", "galaxy", "planet", "orbit", "comet", "nebula", "star", "moon"],
                  "Astronomers pointed the {a} at the {b} to study its {c}."),
}  # fmt: skip


def topic_docs(per_topic: int = 12) -> list[dict]:
    rng = random.Random(3)
    docs = []
    for topic, (words, template) in TOPICS.items():
        for i in range(per_topic):
            a, b, c = rng.sample(words, 3)
            docs.append({"id": f"{topic}-{i}", "text": template.format(a=a, b=b, c=c),
                         "topic": topic})  # fmt: skip
    return docs


@pytest.fixture(scope="module")
def minilm(minilm_dir):
    return Encoder(minilm_dir)


@pytest.mark.parametrize("chunking", ["none", "nested"])
def test_clusters_recover_clearly_separate_topics(es, index_name, minilm, chunking):
    docs = topic_docs()
    Indexer(es, index_name, minilm, chunking=chunking,
            metadata_fields={"topic": "keyword"}).index(docs)  # fmt: skip
    report = cluster_index(es, index_name, k=3, encoder=minilm, central=2)
    assert report.documents == len(docs) and sorted(t.size for t in report.topics) == [12] * 3
    for topic in report.topics:
        members = {doc_id.split("-")[0] for doc_id, _, _ in topic.central}
        assert len(members) == 1, topic  # the most central documents share one topic
        (name,) = members
        assert set(topic.terms[:5]) & set(TOPICS[name][0]), (name, topic.terms)


def test_cluster_ids_written_back_are_filterable_and_vectors_survive(
    es, es_server, index_name, minilm, minilm_dir
):
    docs = topic_docs(8)
    Indexer(es, index_name, minilm, chunking="none").index(docs)
    searcher = Searcher(es, index_name, minilm)
    before = [h.id for h in searcher.search("a comet in orbit", mode="knn", k=5).hits]
    result = CliRunner().invoke(cli, [
        "clusters", index_name, "--k", "3", "--write-field", "topic_id", "--json",
        "--es-url", es_server.config.url, "--model", str(minilm_dir),
    ])  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["written"] == len(docs) and report["failed"] == 0
    biggest = report["clusters"][0]
    # the id is a filterable metadata field now; kNN still works (vectors were re-written)
    searcher = Searcher(es, index_name, minilm)
    after = searcher.search("a comet in orbit", mode="knn", k=5)
    assert [h.id for h in after.hits] == before
    members = searcher.search("dinner", mode="knn", k=30, filters={"topic_id": biggest["id"]})
    assert len(members.hits) == biggest["size"]
    table = CliRunner().invoke(cli, ["clusters", index_name, "--k", "3", "--quiet",
                                     "--es-url", es_server.config.url, "--model",
                                     str(minilm_dir)])  # fmt: skip
    assert table.exit_code == 0 and "3 clusters" in table.output
