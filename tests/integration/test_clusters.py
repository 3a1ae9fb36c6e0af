"""Topic clusters over an index with the packaged MiniLM (and tiny models) on the real ES-API
server."""

from __future__ import annotations

import json
import random

import pytest
from click.testing import CliRunner

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.corpus.clusters import cluster_index
from es_semantic.corpus.scan import vector_pages
from es_semantic.errors import IndexContractError
from es_semantic.indexing.admin import read_contract
from tests.integration.fault_proxy import fault_proxy
from tests.tiny_models import fast_bert_tokenizer, make_sentence_transformers, write_vocab

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
    report = json.loads(result.stdout)
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


@pytest.fixture(scope="module")
def other_384_dir(tmp_path_factory):
    """Another sentence-transformers model with the packaged MiniLM's 384 dimensions (random
    weights): an index built with it takes MiniLM vectors without a mapping error."""
    import torch
    from transformers import BertConfig, BertModel

    folder = tmp_path_factory.mktemp("other-384")
    vocab = write_vocab(folder)
    torch.manual_seed(5)
    config = BertConfig(vocab_size=len(vocab.read_text(encoding="utf-8").split()),
                        hidden_size=384, num_hidden_layers=1, num_attention_heads=2,
                        intermediate_size=64, max_position_embeddings=128)  # fmt: skip
    BertModel(config).save_pretrained(str(folder))
    fast_bert_tokenizer(vocab).save_pretrained(str(folder))
    make_sentence_transformers(folder)
    pooling = folder / "1_Pooling" / "config.json"
    pooling.write_text(pooling.read_text().replace('"word_embedding_dimension": 32',
                                                   '"word_embedding_dimension": 384'))  # fmt: skip
    return folder


def _knn_scores(es, index, encoder, query):
    hits = Searcher(es, index, encoder).search(query, mode="knn", k=50).hits
    return {h.id: round(h.score, 5) for h in hits}


def test_write_field_refuses_a_model_the_index_was_not_built_with(
    es, es_server, index_name, other_384_dir, minilm
):
    """A passage index built with another 384-d model: `clusters --write-field` with the
    packaged MiniLM (the default --model) re-encodes passages, so it must refuse in one line
    before anything is written; the vectors and the mapping stay as they were."""
    other = Encoder(other_384_dir)
    Indexer(es, index_name, other, chunking="nested").index(topic_docs(4))
    before = _knn_scores(es, index_name, other, "telescope galaxy")
    result = CliRunner().invoke(cli, ["clusters", index_name, "--k", "2", "--write-field",
                                      "topic_id", "--quiet", "--es-url",
                                      es_server.config.url])  # fmt: skip
    es.indices.refresh(index=index_name)
    assert _knn_scores(es, index_name, other, "telescope galaxy") == before  # not re-encoded
    assert result.exit_code != 0, result.output
    (line,) = result.output.strip().splitlines()
    assert index_name in line and "built with" in line, line
    mapping = es.indices.get_mapping(index=index_name)[index_name]["mappings"]
    assert "topic_id" not in mapping.get("properties", {})
    with pytest.raises(IndexContractError, match="built with"):  # comparing vectors too
        cluster_index(es, index_name, k=2, encoder=minilm)
    contract = read_contract(es, index_name)  # and the shared scan, for any other caller
    with pytest.raises(IndexContractError, match="built with"):
        next(vector_pages(es, index_name, contract, filters=[], encoder=minilm, page_size=10))


def _edit_and_delete_before_the_first_bulk(es, index, edited, deleted):
    """A proxy rule: on the first _bulk (the write-back, after its scan), another client edits
    one document and deletes another, straight on the server, then the _bulk goes on."""
    state = {"done": False}

    def rule(method, path, body, headers):
        if not state["done"] and path.split("?")[0].endswith("_bulk"):
            state["done"] = True
            es.update(index=index, id=edited, doc={"text": "edited by someone else"})
            es.delete(index=index, id=deleted)
            es.indices.refresh(index=index)
        return None

    return rule


def test_write_back_never_overwrites_a_concurrent_edit_or_brings_back_a_deleted_document(
    es, es_server, index_name, tiny_st_dir
):
    docs = topic_docs(5)
    Indexer(es, index_name, Encoder(tiny_st_dir), chunking="none").index(docs)
    edited, deleted = "cooking-1", "football-2"
    rule = _edit_and_delete_before_the_first_bulk(es, index_name, edited, deleted)
    with fault_proxy(es_server.config.url, rule) as proxy:
        result = CliRunner().invoke(cli, ["clusters", index_name, "--k", "3", "--write-field",
                                          "topic_id", "--json", "--es-url", proxy.url])  # fmt: skip
    es.indices.refresh(index=index_name)
    assert not es.exists(index=index_name, id=deleted), "a deleted document came back"
    kept = es.get(index=index_name, id=edited)["_source"]
    assert kept["text"] == "edited by someone else" and "topic_id" not in kept, kept
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert (report["written"], report["conflicts"], report["failed"]) == (len(docs) - 2, 2, 0)
    assert sorted(report["conflict_ids"]) == sorted([edited, deleted])
    labelled = es.count(index=index_name, query={"exists": {"field": "topic_id"}})["count"]
    assert labelled == len(docs) - 2
    # the text output says so too (another edit, between this run's scan and its write)
    rule = _edit_and_delete_before_the_first_bulk(es, index_name, "astronomy-0", "astronomy-1")
    with fault_proxy(es_server.config.url, rule) as proxy:
        text = CliRunner().invoke(cli, ["clusters", index_name, "--k", "3", "--write-field",
                                        "topic_id", "--quiet", "--es-url", proxy.url])  # fmt: skip
    assert text.exit_code == 0, text.output
    assert "2 changed or deleted since the scan" in text.output, text.output
