"""Near-duplicates over an index with the packaged MiniLM on the real ES-API server."""

from __future__ import annotations

import json
import uuid

import pytest
from click.testing import CliRunner

from es_semantic import Encoder, Indexer, Searcher
from es_semantic.cli import cli
from es_semantic.corpus.duplicates import find_duplicates
from es_semantic.corpus.pairs import best_of, group_pairs
from es_semantic.errors import ConfigError
from tests.integration.corpus import DOCS

pytestmark = pytest.mark.slow
BY_ID = {d["id"]: d for d in DOCS}
PLANTED = [
    # an exact copy, a copy with its sentences reordered, a paraphrase in other words
    {**BY_ID["pasta"], "id": "pasta-copy", "lang": "fr"},
    {**BY_ID["bread"], "id": "bread-reordered",
     "text": "Bake it in a hot oven after the dough rises; knead flour, yeast, salt and water."},
    {**BY_ID["marathon"], "id": "marathon-paraphrase", "title": "Training for a marathon",
     "text": "Increase your weekly distance gradually, add one long run and take rest days so "
             "you do not get injured."},
    # a chain: pasta ~ pasta-copy ~ pasta-copy-2 (joined into one group by --groups)
    {**BY_ID["pasta"], "id": "pasta-copy-2", "title": "Cooking pasta at home"},
]  # fmt: skip
EXPECTED = {("pasta", "pasta-copy"), ("bread", "bread-reordered"),
            ("marathon", "marathon-paraphrase")}  # fmt: skip


@pytest.fixture(scope="module", params=["none", "nested"], ids=["one-vector", "passages"])
def planted_index(request, es, minilm):
    """One index per layout for the module (the scans re-encode passages: keep them few)."""
    name = f"test-dups-{uuid.uuid4().hex[:10]}"
    Indexer(es, name, minilm, metadata_fields={"lang": "keyword"}, index_options="flat",
            chunking=request.param).index([*DOCS, *PLANTED])  # fmt: skip
    yield name, request.param
    es.indices.delete(index=name)


@pytest.fixture(scope="module")
def found(es, planted_index, minilm):
    """The pairs at 0.8 over the whole index, scanned once per layout."""
    return best_of(find_duplicates(es, planted_index[0], threshold=0.8, encoder=minilm))


def test_planted_duplicates_are_found_and_unrelated_documents_are_not(planted_index, found):
    chunking, pairs = planted_index[1], found
    keys = {(p.a, p.b) for p in pairs}
    assert keys >= EXPECTED, pairs
    unrelated = {d["id"] for d in DOCS} - {"pasta", "bread", "marathon"}
    assert not any({p.a, p.b} & unrelated for p in pairs), pairs
    copy = next(p for p in pairs if (p.a, p.b) == ("pasta", "pasta-copy"))
    assert copy.score == pytest.approx(1.0, abs=1e-3) and pairs[0].score >= pairs[-1].score
    assert "spaghetti" in copy.snippet_a and "spaghetti" in copy.snippet_b
    if chunking == "nested":  # the pair says which passages matched
        assert copy.passage_a and "spaghetti" in copy.passage_a and copy.passage_b
    # each pair once
    assert len(keys) == len(pairs) and all(p.a < p.b for p in pairs)


def test_threshold_and_filters_are_respected(es, planted_index, minilm, found):
    index, _ = planted_index
    strict = best_of(find_duplicates(es, index, threshold=0.99, encoder=minilm))
    assert {(p.a, p.b) for p in strict} == {(p.a, p.b) for p in found if p.score >= 0.99}
    assert {(p.a, p.b) for p in strict} >= {("pasta", "pasta-copy")}
    assert all(p.score >= 0.99 for p in strict)
    assert ("marathon", "marathon-paraphrase") not in {(p.a, p.b) for p in strict}
    english = best_of(find_duplicates(es, index, threshold=0.8, filters={"lang": "en"},
                                      encoder=minilm))  # fmt: skip
    assert not any("pasta-copy" in (p.a, p.b) for p in english)  # the copy is lang=fr
    assert ("bread", "bread-reordered") in {(p.a, p.b) for p in english}


def test_groups_join_transitively_with_a_representative(found):
    groups = group_pairs(found)
    pasta = next(g for g in groups if "pasta" in g.members)
    assert set(pasta.members) == {"pasta", "pasta-copy", "pasta-copy-2"}
    assert pasta.representative in pasta.members
    assert len(groups) == 3 and groups[0] is pasta  # the largest first


@pytest.mark.parametrize("planted_index", ["none"], indirect=True)  # the same scan code path
def test_cli_json_csv_groups_and_resume(es_server, es, planted_index, tmp_path, minilm_dir):
    index, _ = planted_index
    base = [index, "--threshold", "0.8", "--es-url", es_server.config.url, "--model",
            str(minilm_dir)]  # fmt: skip
    out = CliRunner().invoke(cli, ["duplicates", *base, "--json", "--groups", "--csv",
                                   str(tmp_path / "pairs.csv")])  # fmt: skip
    assert out.exit_code == 0, out.output
    payload = json.loads(out.stdout)
    assert {(p["a"], p["b"]) for p in payload["pairs"]} >= EXPECTED
    assert payload["groups"][0]["size"] == 3
    assert (tmp_path / "pairs.csv").read_text().count("\n") == len(payload["pairs"]) + 1
    table = CliRunner().invoke(cli, ["duplicates", *base, "--quiet"])
    assert table.exit_code == 0 and "bread-reordered" in table.output
    # resumable: a first pass over 5 documents, then the rest; the same pairs in the end
    state = tmp_path / "state.jsonl"
    first = list(find_duplicates(es, index, threshold=0.8, limit=5, checkpoint=state,
                                 encoder=Encoder(minilm_dir)))  # fmt: skip
    done = sum(len(json.loads(x).get("done", [])) for x in state.read_text().splitlines())
    assert done == 5 and len(first) <= len(payload["pairs"])
    resumed = CliRunner().invoke(cli, ["duplicates", *base, "--json", "--checkpoint",
                                       str(state)])  # fmt: skip
    assert {(p["a"], p["b"]) for p in json.loads(resumed.stdout)["pairs"]} == {
        (p["a"], p["b"]) for p in payload["pairs"]
    }


def test_a_chunked_index_needs_its_model(es, index_name, minilm):
    Indexer(es, index_name, minilm, chunking="nested").index(DOCS[:3])
    with pytest.raises(ConfigError, match="--model"):
        next(find_duplicates(es, index_name))


@pytest.mark.parametrize("chunking", ["none", "nested"])
def test_dedupe_at_ingest_flags_or_skips_and_counts(es, index_name, minilm, chunking):
    first = Indexer(es, index_name, minilm, chunking=chunking, dedupe_threshold=0.9,
                    metadata_fields={"lang": "keyword"}).index(DOCS)  # fmt: skip
    assert (first.flagged, first.deduplicated, first.indexed) == (0, 0, len(DOCS))
    # a later run: copies of indexed documents, and a copy of a document of the same batch
    later = [PLANTED[0], PLANTED[1], {"id": "new", "text": "Tide tables for the harbour."},
             {"id": "new-copy", "text": "Tide tables for the harbour!"}]  # fmt: skip
    flagged = Indexer(es, index_name, minilm, dedupe_threshold=0.9).index(later)
    marks = {d["id"]: (d["duplicate_of"], d["action"]) for d in flagged.near_duplicates}
    assert marks == {"pasta-copy": ("pasta", "flagged"), "bread-reordered": ("bread", "flagged"),
                     "new-copy": ("new", "flagged")}  # fmt: skip
    assert (flagged.flagged, flagged.indexed, flagged.total) == (3, 4, 4)
    es.indices.refresh(index=index_name)
    hit = es.get(index=index_name, id="pasta-copy")["_source"]
    assert hit["duplicate_of"] == "pasta"

    only = Searcher(es, index_name, minilm).search("spaghetti", mode="keyword",
                                                   filters={"duplicate_of": "pasta"})  # fmt: skip
    assert [h.id for h in only.hits] == ["pasta-copy"]  # filterable
    skipping = Indexer(es, index_name, minilm, dedupe_threshold=0.8, dedupe="skip").index(
        [PLANTED[2], {"id": "fresh", "text": "Quantum error correction codes."}]
    )
    assert (skipping.deduplicated, skipping.indexed, skipping.total) == (1, 1, 2)
    assert skipping.near_duplicates[0]["duplicate_of"] == "marathon"
    assert not es.exists(index=index_name, id="marathon-paraphrase")


def test_max_inner_product_threshold_is_the_score(es, index_name, tiny_st_dir):
    """On a max_inner_product index the threshold is Elasticsearch's score (dot + 1 for unit
    vectors): 1.99 keeps the exact copy (dot ~1, score ~2) and the probe's kNN cut-off is the
    raw dot product 0.99, not 1.99 (which no unit vector reaches)."""
    tiny = Encoder(tiny_st_dir)
    docs = [{"id": "a", "text": "the cat and the dog"}, {"id": "a-copy", "text": "the cat and the dog"},
            {"id": "b", "text": "green river mountain music film"}]  # fmt: skip
    Indexer(es, index_name, tiny, chunking="none", similarity="max_inner_product",
            index_options="flat").index(docs)  # fmt: skip
    pairs = best_of(find_duplicates(es, index_name, threshold=1.99))
    assert [(p.a, p.b) for p in pairs] == [("a", "a-copy")], pairs
    assert pairs[0].score == pytest.approx(2.0, abs=1e-3)  # the score unit, read back
    assert not best_of(find_duplicates(es, index_name, threshold=2.01))
    with pytest.raises(ConfigError, match="max_inner_product"):
        next(find_duplicates(es, index_name, threshold=0.0))
