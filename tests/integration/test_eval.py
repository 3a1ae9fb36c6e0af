"""es-semantic eval on a tiny BEIR folder written here; keyword metrics computed by hand."""

from __future__ import annotations

import json
import math

from click.testing import CliRunner

from es_semantic.cli import cli
from es_semantic.indexing.admin import read_contract


def write_beir(folder):
    corpus = [
        {"_id": "d1", "title": "zebra", "text": "stripes on the savanna"},
        {"_id": "d2", "title": "horse", "text": "a stable animal"},
        {"_id": "d3", "title": "yak", "text": "long hair in the mountains"},
        {"_id": "d4", "title": "fish", "text": "river swimming"},
    ]
    (folder / "corpus.jsonl").write_text("\n".join(json.dumps(d) for d in corpus) + "\n")
    (folder / "queries.jsonl").write_text(
        json.dumps({"_id": "q1", "text": "zebra"})
        + "\n"
        + json.dumps({"_id": "q2", "text": "yak"})
        + "\n"
    )
    (folder / "qrels").mkdir()
    (folder / "qrels" / "test.tsv").write_text(
        "query-id\tcorpus-id\tscore\nq1\td1\t1\nq1\td2\t1\nq2\td3\t1\n"
    )


def run_eval(args, es_server, model_dir):
    """``es-semantic ARGS --json --quiet`` on the test server with ``model_dir``: its table."""
    common = ["--json", "--quiet", "--es-url", es_server.config.url, "--model", str(model_dir)]
    result = CliRunner().invoke(cli, [*args, *common], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_eval_beir_keyword_metrics_by_hand(es_server, tiny_st_dir, tmp_path, es, index_name):
    write_beir(tmp_path)
    args = ["eval", "--beir", str(tmp_path), "--index", index_name, "--modes",
            "keyword,knn,hybrid,weighted"]  # fmt: skip
    table = run_eval(args, es_server, tiny_st_dir)
    assert list(table) == ["keyword", "knn", "hybrid", "weighted", "encoder"]
    # beside the modes: the backend and precision that ran (those the index contract recorded)
    contract = read_contract(es, index_name)
    assert table["encoder"] == {"model": contract.model_name, "backend": contract.backend,
                                "quantize": contract.quantize,
                                "precision": contract.precision}  # fmt: skip
    # q1: only d1 matches "zebra"; d2 is relevant but never retrieved. q2: d3 alone, relevant.
    q1_ndcg = 1 / (1 + 1 / math.log2(3))
    keyword = table["keyword"]
    assert keyword["ndcg@10"] == round((q1_ndcg + 1) / 2, 4)
    assert keyword["recall@100"] == 0.75
    assert keyword["mrr@10"] == 1.0
    assert keyword["map@100"] == 0.75
    assert keyword["p50_ms"] > 0
    for mode in ("knn", "hybrid", "weighted"):
        assert set(table[mode]) == {
            "ndcg@10",
            "recall@100",
            "mrr@10",
            "map@100",
            "p50_ms",
            "p95_ms",
        }
        assert table[mode]["recall@100"] == 1.0  # kNN returns every document of a 4-doc index

    again = CliRunner().invoke(
        cli,
        [
            *args,
            "--json",
            "--quiet",
            "--tune",
            "--plot",
            str(tmp_path / "eval.png"),
            "--es-url",
            es_server.config.url,
            "--model",
            str(tiny_st_dir),
        ],
        catch_exceptions=False,
    )
    assert again.exit_code == 0, again.output
    assert "skipped 4 unchanged" in again.output and "encoded 0" in again.output
    assert "best alpha=" in again.output and "held out" in again.output
    assert (tmp_path / "eval.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_eval_with_trec_qrels_and_index_corpus(es_server, tiny_st_dir, tmp_path, index_name):
    write_beir(tmp_path)
    (tmp_path / "qrels.trec").write_text("q1 0 d1 1\nq1 0 d2 1\nq2 0 d3 1\n")
    args = [
        "eval",
        index_name,
        "--queries",
        str(tmp_path / "queries.jsonl"),
        "--qrels",
        str(tmp_path / "qrels.trec"),
        "--index-corpus",
        str(tmp_path / "corpus.jsonl"),
        "--modes",
        "keyword",
        "--concurrency",
        "3",
    ]
    assert run_eval(args, es_server, tiny_st_dir)["keyword"]["recall@100"] == 0.75
    usage = CliRunner().invoke(cli, ["eval", index_name, "--es-url", es_server.config.url])
    assert usage.exit_code == 2 and "--queries FILE --qrels FILE" in usage.output


def test_eval_runs_and_fuses_the_sparse_leg(es_server, tiny_st_dir, tmp_path, index_name):
    from tests.sparse_models import splade_tiny_dir

    write_beir(tmp_path)
    args = ["eval", "--beir", str(tmp_path), "--index", index_name, "--sparse-model",
            str(splade_tiny_dir()), "--modes", "sparse,hybrid,weighted,adaptive"]  # fmt: skip
    table = run_eval(args, es_server, tiny_st_dir)
    assert list(table) == ["sparse", "hybrid", "weighted", "adaptive", "encoder"]
    assert table["sparse"]["mrr@10"] == 1.0  # "zebra" and "yak" are the documents' titles
    for mode in ("hybrid", "weighted", "adaptive"):
        assert table[mode]["recall@100"] == 1.0  # kNN returns every document of a 4-doc index
    plain = ["eval", "--beir", str(tmp_path), "--index", index_name, "--modes", "sparse"]
    refused = CliRunner().invoke(
        cli, [*plain, "--es-url", es_server.config.url, "--model", str(tiny_st_dir)]
    )
    assert refused.exit_code != 0 and "--sparse-model" in refused.output
