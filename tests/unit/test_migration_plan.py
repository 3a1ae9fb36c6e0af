from es_semantic.config import EncoderConfig
from es_semantic.migration.plan import (
    GateResult,
    layout_differences,
    migration_meta,
    new_contract,
    new_index_name,
    resume_refusal,
    swap_actions,
)
from es_semantic.schema.contract import IndexContract

OLD_CFG = EncoderConfig("old-model", "/o", "fp-old", "cls", True, 512, "", "", 8)
NEW_CFG = EncoderConfig("org/New_Model", "/n", "fp-new", "mean", True, 128, "query: ", "", 16)
OLD = IndexContract.from_encoder(
    OLD_CFG,
    text_fields=("body",),
    metadata_fields={"lang": "keyword"},
    similarity="dot_product",
    chunking="nested",
    chunk_tokens=300,
    chunk_overlap=40,
)


def test_new_contract_carries_fields_and_layout_and_fits_the_window():
    new = new_contract(OLD, NEW_CFG)
    assert (new.model_fingerprint, new.dims, new.pooling) == ("fp-new", 16, "mean")
    assert new.text_fields == ("body",) and dict(new.metadata_fields) == {"lang": "keyword"}
    assert new.similarity == "dot_product" and new.chunking == "nested"
    assert (new.chunk_tokens, new.chunk_overlap) == (128, 40)  # 300 does not fit 128
    flat = new_contract(OLD, NEW_CFG, chunking="none", similarity="cosine")
    assert (flat.chunking, flat.chunk_tokens, flat.similarity) == ("none", 0, "cosine")
    plain = IndexContract.from_encoder(OLD_CFG)
    chunked = new_contract(plain, NEW_CFG, chunking="nested")
    assert (chunked.chunk_tokens, chunked.chunk_overlap) == (128, 32)


def test_new_index_name_is_stable_and_depends_on_the_target():
    a, b = new_contract(OLD, NEW_CFG), new_contract(OLD, NEW_CFG)
    assert new_index_name("docs", a) == new_index_name("docs", b)
    assert new_index_name("docs", a).startswith("docs-new_model-")
    other = new_contract(OLD, NEW_CFG, chunk_tokens=64)
    assert new_index_name("docs", other) != new_index_name("docs", a)


def test_swap_is_one_request_keeping_alias_properties():
    actions = swap_actions(
        "docs", "v1", "v2", {"is_write_index": True, "filter": {"term": {"a": 1}}, "x": 1}
    )
    assert actions == [
        {"remove": {"index": "v1", "alias": "docs"}},
        {
            "add": {
                "index": "v2",
                "alias": "docs",
                "is_write_index": True,
                "filter": {"term": {"a": 1}},
            }
        },
    ]


def test_gate_allows_a_small_drop_only():
    assert GateResult("ndcg@10", "knn", 0.60, 0.595, 0.01).passed
    failed = GateResult("ndcg@10", "knn", 0.60, 0.58, 0.01)
    assert not failed.passed and "FAILED" in failed.describe() and "-0.0200" in failed.describe()


def test_writes_go_to_the_alias_write_index():
    import pytest

    from es_semantic.errors import ConfigError
    from es_semantic.indexing.admin import write_index_of

    assert write_index_of("docs", {"docs-v1": {"aliases": {"docs": {}}}}) == "docs-v1"
    two = {
        "docs-v1": {"aliases": {"docs": {}}},
        "docs-v2": {"aliases": {"docs": {"is_write_index": True}}},
    }
    assert write_index_of("docs", two) == "docs-v2"
    two["docs-v2"]["aliases"]["docs"] = {}
    with pytest.raises(ConfigError, match="none is its write index"):
        write_index_of("docs", two)


def _mapping(index, meta):
    return {index: {"mappings": {"_meta": meta, "properties": {}}}}


def test_only_this_migrations_own_target_is_resumed():
    contract = OLD.to_meta()
    mine = _mapping("docs-v2", {**contract, **migration_meta("docs", "docs-v1")})
    assert resume_refusal(mine, "docs-v2", "docs", "docs-v1") is None
    # a compatible index with no record: another application's, or made before the record
    unrecorded = resume_refusal(_mapping("docs-v2", contract), "docs-v2", "docs", "docs-v1")
    assert unrecorded == "its _meta records no migration"
    assert resume_refusal({"docs-v2": {"mappings": {}}}, "docs-v2", "docs", "docs-v1")
    other_alias = resume_refusal(mine, "docs-v2", "other", "docs-v1")
    assert other_alias == "it was made by the migration of alias 'docs' from 'docs-v1'"
    assert resume_refusal(mine, "docs-v2", "docs", "docs-v0")  # the alias moved since
    # --to naming an alias (or a pattern): the response is keyed by other indices
    behind = _mapping("docs-v2", {**contract, **migration_meta("docs", "docs-v1")})
    refusal = resume_refusal(behind, "docs-live", "docs", "docs-v1")
    assert refusal == "the name stands for docs-v2"


def test_new_index_name_does_not_depend_on_where_the_sparse_model_is():
    """The sparse leg records its model's folder (#28) to find it again; the folder does not
    change the vectors, so the new index's name (a resumable migration) does not carry it."""
    from dataclasses import replace

    from es_semantic.schema.contract import SparseLeg

    leg = SparseLeg(model_name="splade", model_fingerprint="5p1ade", max_length=128)
    here = replace(OLD, sparse=replace(leg, model_path="/a/splade", model_package="pkg/splade"))
    there = replace(OLD, sparse=replace(leg, model_path="/b/splade"))
    assert new_index_name("docs", here) == new_index_name("docs", there)
    other = replace(OLD, sparse=replace(leg, model_fingerprint="0ther"))
    assert new_index_name("docs", here) != new_index_name("docs", other)


def test_migrating_with_the_same_sparse_model_records_where_it_is():
    """An index made before the folder was recorded, migrated with its model given: the new
    index's leg is the old one, with where the model is now."""
    from dataclasses import replace
    from types import SimpleNamespace

    from es_semantic.migration.plan import with_sparse_leg
    from es_semantic.schema.contract import SparseLeg

    leg = SparseLeg(model_name="splade", model_fingerprint="5p1ade", max_length=128, prune=True)
    spec = SimpleNamespace(fingerprint="5p1ade", folder="/m/splade", package=None)
    moved = with_sparse_leg(OLD, replace(OLD, sparse=leg), spec, "docs")  # type: ignore[arg-type]
    assert moved.sparse == replace(leg, model_path="/m/splade")


def test_a_target_of_another_layout_is_named_by_the_options_that_differ():
    target = new_contract(OLD, NEW_CFG)
    assert layout_differences(new_contract(OLD, NEW_CFG), target) == []
    other = new_contract(OLD, NEW_CFG, similarity="cosine", chunking="none")
    found = layout_differences(other, target)
    assert [d.split()[0] for d in found] == ["similarity", "chunking", "chunk_tokens",
                                             "chunk_overlap"]  # fmt: skip
    assert "(asked: 'dot_product')" in found[0]
