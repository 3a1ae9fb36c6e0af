"""eval --tune --save keeps what it found in the index _meta; searches, info and rerank use it."""

from __future__ import annotations

import json

from click.testing import CliRunner

from es_semantic.cli import cli
from es_semantic.elastic.calls import run
from es_semantic.encoding.reranker import CrossEncoder
from es_semantic.evaluation.saved import save_tuning_steps
from es_semantic.indexing.indexer import Indexer
from es_semantic.schema.contract import META_KEY
from es_semantic.schema.tuning import TUNED_FUSIONS, TUNING_KEY, RerankEvaluation, Tuning
from es_semantic.search.searcher import Searcher

ANIMALS = ["zebra", "horse", "yak", "fish", "eagle", "otter", "camel", "llama"]


def write_beir(folder):
    corpus = [{"_id": f"d{i}", "title": a, "text": f"the {a} lives here"}
              for i, a in enumerate(ANIMALS)]  # fmt: skip
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
    queries = [{"_id": f"q{i}", "text": a} for i, a in enumerate(ANIMALS)]
    (folder / "queries.jsonl").write_text("\n".join(json.dumps(q) for q in queries) + "\n")
    (folder / "qrels").mkdir()
    rows = "".join(f"q{i}\td{i}\t1\n" for i in range(len(ANIMALS)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + rows)


def cli_run(args, es_server, model_dir):
    common = ["--es-url", es_server.config.url, "--model", str(model_dir)]
    result = CliRunner().invoke(cli, [*args, *common], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result


def meta_of(es, index):
    mapping = es.indices.get_mapping(index=index).body
    return mapping[index]["mappings"]["_meta"]


def test_eval_tune_save_keeps_the_contract_and_stores_the_tuning(
    es_server, es, index_name, tiny_st_dir, tiny_cross_encoder_dir, tmp_path
):
    write_beir(tmp_path)
    args = ["eval", "--beir", str(tmp_path), "--index", index_name, "--modes",
            "keyword,hybrid,hybrid+rerank", "--rerank", str(tiny_cross_encoder_dir),
            "--rerank-top", "5", "--tune", "--save", "--quiet"]  # fmt: skip
    out = cli_run(args, es_server, tiny_st_dir).output
    assert "rerank over hybrid: ndcg@10" in out and "paired bootstrap 95% interval" in out
    assert "saved in the _meta of" in out
    meta = meta_of(es, index_name)
    stored = Tuning.from_meta(meta)
    assert stored is not None and stored.fusion in TUNED_FUSIONS
    assert (stored.queries, stored.qrels) == ("queries.jsonl", "test.tsv")
    assert stored.digest.startswith("sha256:") and stored.date.startswith("20")
    assert stored.tuned_on + stored.held_out == len(ANIMALS)
    assert stored.rerank is not None
    assert stored.rerank.fingerprint == CrossEncoder(tiny_cross_encoder_dir).fingerprint
    assert 0.0 <= stored.rerank.weight <= 1.0
    # the tiny cross-encoder is random (deliberately bad): blended and tuned, it never costs
    # more than 0.002 nDCG@10 against its first stage on the held-out queries
    assert stored.rerank.blended_gain >= -0.002
    # the contract is intact: the index still takes documents from the same model
    assert meta[META_KEY]["model_name"] and meta[META_KEY]["dims"]
    before = dict(meta[META_KEY])
    cli_run(["index", index_name, str(tmp_path / "corpus.jsonl"), "--format", "beir", "--quiet"],
            es_server, tiny_st_dir)  # fmt: skip
    after = meta_of(es, index_name)
    assert after[META_KEY] == before and TUNING_KEY in after
    info = json.loads(cli_run(["info", index_name, "--json"], es_server, tiny_st_dir).stdout)
    assert info["tuning"]["fusion"] == stored.fusion
    text = cli_run(["info", index_name], es_server, tiny_st_dir).output
    assert "tuned      " in text and "queries.jsonl" in text


def test_searches_use_the_stored_fusion_unless_told_otherwise(es, index_name, tiny):
    indexer = Indexer(es, index_name, tiny, chunking="none")
    indexer.index([{"_id": f"d{i}", "text": f"the {a} lives here"} for i, a in enumerate(ANIMALS)])
    run(es, save_tuning_steps(index_name, Tuning("weighted", alpha=1.0)))
    searcher = Searcher(es, index_name, tiny)
    auto = searcher.search("the zebra", k=8)
    knn = searcher.search("the zebra", mode="knn", k=8)
    assert auto.fusion == "weighted"
    assert [h.id for h in auto.hits] == [h.id for h in knn.hits]  # alpha 1: kNN's order
    assert Searcher(es, index_name, tiny).search("the zebra", fusion="rrf").fusion == "rrf"
    run(es, save_tuning_steps(index_name, Tuning("adaptive")))
    assert Searcher(es, index_name, tiny).search("the zebra").fusion == "adaptive"


def test_search_warns_when_the_stored_evaluation_says_the_reranker_hurts(
    es_server, es, index_name, tiny, tiny_st_dir, tiny_cross_encoder_dir
):
    indexer = Indexer(es, index_name, tiny, chunking="none")
    indexer.index([{"_id": f"d{i}", "text": f"the {a} lives here"} for i, a in enumerate(ANIMALS)])
    fingerprint = CrossEncoder(tiny_cross_encoder_dir).fingerprint
    hurts = RerankEvaluation("tiny-ce", fingerprint, 0.0, -0.2, -0.3, -0.1, 0.0)
    run(es, save_tuning_steps(index_name, Tuning("rrf", rerank=hurts)))
    args = ["search", index_name, "the zebra", "--rerank", str(tiny_cross_encoder_dir), "--json"]
    result = CliRunner().invoke(
        cli, [*args, "--es-url", es_server.config.url, "--model", str(tiny_st_dir)]
    )
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if "hurts" in line]
    assert len(warnings) == 1 and "tiny-ce hurts" in warnings[0]
    searched = json.loads(result.stdout)
    plain = Searcher(es, index_name, tiny).search("the zebra")
    # stored weight 0: the first stage's order is kept
    assert [h["id"] for h in searched["hits"]] == [h.id for h in plain.hits]
