"""eval -> finetune -> migrate on the real server with the packaged MiniLM: a careful fine-tune
passes the eval gate and the alias moves; a ruined one is refused and the alias stays.
Hard-negative mining never returns a positive."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from es_semantic import Indexer, Searcher
from es_semantic.cli import cli

pytest.importorskip("datasets", reason="the train extra is not installed")

TOPICS = {
    "ferry": ("Ferry timetable to the island", "Boats leave the harbour for the island hourly."),
    "bread": ("Baking sourdough bread", "Flour, water and a starter rise overnight into bread."),
    "mars": ("Rovers on Mars", "A robot vehicle drives across the red planet's craters."),
    "tax": ("Filing income tax", "Submit the annual return to the revenue office by April."),
    "knee": ("Knee surgery recovery", "Physiotherapy helps the joint heal after an operation."),
    "jazz": ("History of jazz", "Improvised music born in New Orleans with brass bands."),
    "solar": ("Solar panels at home", "Photovoltaic roofs turn sunlight into electricity."),
    "chess": ("Chess openings", "The first moves of the game: gambits and defences."),
    "coral": ("Coral reef bleaching", "Warm seas make corals expel their algae and turn white."),
    "vote": ("How elections work", "Citizens cast ballots and the votes are counted."),
    "wine": ("Making red wine", "Grapes are crushed and fermented with their skins."),
    "bees": ("Honey bee colonies", "Workers, drones and a queen share the hive."),
}
QUERIES = {"ferry": "boat to the island", "bread": "how to make sourdough",
           "mars": "robot exploring mars", "tax": "annual tax return deadline",
           "knee": "healing after knee operation", "jazz": "origins of jazz music",
           "solar": "electricity from sunlight on my roof", "chess": "chess gambit moves"}  # fmt: skip


@pytest.fixture
def live(es, index_name, minilm_dir):
    from es_semantic import Encoder

    docs = [{"id": k, "title": t, "text": x} for k, (t, x) in TOPICS.items()]
    old = f"{index_name}-v1"
    Indexer(es, old, Encoder(minilm_dir), chunking="none").index(docs)
    es.indices.put_alias(index=old, name=index_name)
    yield index_name, old
    made = list(es.indices.get(index=f"{index_name}-*", allow_no_indices=True).body)
    for name in made:  # by name: clusters refuse wildcard deletes
        es.indices.delete(index=name, ignore_unavailable=True)


@pytest.mark.slow
def test_eval_finetune_migrate_loop(es, es_server, live, minilm_dir, tmp_path):
    alias, old = live
    queries = tmp_path / "queries.jsonl"
    queries.write_text(
        "".join(json.dumps({"_id": k, "text": q}) + "\n" for k, q in QUERIES.items())
    )
    qrels = tmp_path / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{k}\t{k}\t1\n" for k in QUERIES))
    url = ["--es-url", es_server.config.url, "--model", str(minilm_dir)]
    evaluated = CliRunner().invoke(cli, ["eval", alias, "--queries", str(queries), "--qrels",
                                         str(qrels), "--modes", "knn", "--json", *url])  # fmt: skip
    assert evaluated.exit_code == 0, evaluated.output
    before = json.loads(evaluated.stdout)["knn"]["ndcg@10"]
    assert before > 0.8  # MiniLM already finds these

    careful, ruined = tmp_path / "careful", tmp_path / "ruined"
    # --keep-trained: the ruined model is saved though it loses to the base on dev (by default
    # the base would be handed back), so that the migration gate has something to refuse;
    # scored at each epoch's end only (a quarter epoch in, it may not be ruined yet)
    for out, lr, epochs, keep in ((careful, "2e-5", "1", []),
                                  (ruined, "0.05", "3", ["--keep-trained",
                                                         "--evals-per-epoch", "1"])):  # fmt: skip
        trained = CliRunner().invoke(cli, ["finetune", "--from-index", alias, "--anchor-field",
                                           "title", "--positive-field", "text", "--out",
                                           str(out), "--lr", lr, "--epochs", epochs,
                                           "--batch-size", "4", "--device", "cpu", *keep, *url])  # fmt: skip
        assert trained.exit_code == 0, trained.output
        assert "dev metric" in trained.output and (out / "es_semantic_training.json").is_file()

    gate = ["--queries", str(queries), "--qrels", str(qrels), "--gate-mode", "knn",
            "--max-drop", "0.05", "--old-model", str(minilm_dir)]  # fmt: skip
    refused = CliRunner().invoke(cli, ["migrate", "--from", alias, "--to", f"{alias}-bad",
                                       *gate, "--es-url", es_server.config.url, "--model",
                                       str(ruined)])  # fmt: skip
    assert refused.exit_code == 1, refused.output
    assert list(es.indices.get_alias(name=alias).body) == [old]  # the alias stayed
    moved = CliRunner().invoke(cli, ["migrate", "--from", alias, "--to", f"{alias}-v2", *gate,
                                     "--es-url", es_server.config.url, "--model",
                                     str(careful)])  # fmt: skip
    assert moved.exit_code == 0, moved.output
    assert list(es.indices.get_alias(name=alias).body) == [f"{alias}-v2"]


def test_hard_negatives_never_include_a_positive(es, live, minilm_dir):
    from es_semantic import Encoder
    from es_semantic.training.data import PairSet
    from es_semantic.training.mining import mine_hard_negatives

    alias, _ = live
    positives = [f"{TOPICS[k][0]} {TOPICS[k][1]}" for k in QUERIES]
    pairs = PairSet("queries", list(QUERIES.values()), positives, [], [], "test")
    mined = mine_hard_negatives(Searcher(es, alias, Encoder(minilm_dir)), pairs, per_query=3)
    for positive, negatives in zip(positives, mined.negatives, strict=True):
        assert len(negatives) == 3
        assert positive not in negatives
        assert all(n in {f"{t} {x}" for t, x in TOPICS.values()} for n in negatives)
