"""The sparse leg in the index contract and the mapping (pure)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from es_semantic.config import EncoderConfig
from es_semantic.errors import ConfigError, IndexContractError
from es_semantic.schema.contract import (
    IndexContract,
    SparseLeg,
    contract_from_mapping_response,
    escape_feature,
    escape_vector,
)
from es_semantic.schema.mapping import index_body

DENSE = EncoderConfig(model_name="m", model_path="/m", fingerprint="f" * 16, pooling="mean",
                      normalize=True, max_length=128, query_prefix="", document_prefix="",
                      dim=8)  # fmt: skip


@dataclass(frozen=True)
class Spec:
    name: str = "splade-tiny"
    fingerprint: str = "s" * 16
    max_length: int = 512
    pooling: str = "max"
    activation: str = "relu"
    query_mode: str = "model"
    query_prefix: str = ""
    document_prefix: str = ""


def contract(**leg: object) -> IndexContract:
    return IndexContract.from_encoder(DENSE, sparse=SparseLeg.from_model(Spec(), **leg))


def test_meta_round_trip_keeps_the_leg() -> None:
    made = contract(prune=True, tokens_weight_threshold=0.3)
    back = contract_from_mapping_response({"i": {"mappings": {"_meta": made.to_meta()}}}, "i")
    assert back == made
    assert back.sparse is not None and back.sparse.model_fingerprint == "s" * 16
    assert back.sparse.prune and back.sparse.tokens_weight_threshold == 0.3
    plain = IndexContract.from_encoder(DENSE)
    assert IndexContract.from_meta(plain.to_meta(), "i").sparse is None


def test_mapping_has_a_sparse_vector_field_left_out_of_source() -> None:
    body = index_body(contract())
    assert body["mappings"]["properties"]["sparse"] == {"type": "sparse_vector"}
    assert "sparse" in body["mappings"]["_source"]["excludes"]
    assert "sparse" not in index_body(IndexContract.from_encoder(DENSE))["mappings"]["properties"]


def test_feature_names_carry_no_dots_and_stay_distinct() -> None:
    tokens = [".", "u.s.", "%2E", "%", "cat", "##ing"]
    escaped = [escape_feature(t) for t in tokens]
    assert not any("." in e for e in escaped)
    assert len(set(escaped)) == len(tokens)
    assert escape_feature("cat") == "cat" and escape_feature(".") == "%2E"


def test_weights_elasticsearch_refuses_are_dropped() -> None:
    vector = escape_vector({"a": 1.5, "b": 0.0, "c": -1.0, "d": 1e-45, ".": 0.25})
    assert vector == {"a": 1.5, "%2E": 0.25}


def test_another_sparse_model_is_refused() -> None:
    leg = contract().sparse
    assert leg is not None
    leg.check(Spec(), "docs")
    with pytest.raises(IndexContractError, match="sparse leg built with splade-tiny"):
        leg.check(Spec(fingerprint="x" * 16), "docs")
    with pytest.raises(IndexContractError, match="max_length"):
        leg.check(Spec(max_length=256), "docs", for_indexing=True)
    leg.check(Spec(max_length=256), "docs")  # queries: the window does not matter


def test_field_name_clash_and_pruning_bounds() -> None:
    with pytest.raises(ConfigError, match="reserved"):
        IndexContract.from_encoder(
            DENSE, sparse=SparseLeg.from_model(Spec()), text_fields=("sparse",)
        )
    with pytest.raises(ConfigError, match="tokens_freq_ratio_threshold"):
        SparseLeg.from_model(Spec(), tokens_freq_ratio_threshold=500)
    with pytest.raises(ConfigError, match="tokens_weight_threshold"):
        SparseLeg.from_model(Spec(), tokens_weight_threshold=1.5)


def test_ray_batches_carry_the_sparse_model_not_the_encoder() -> None:
    from es_semantic.indexing.options import IndexOptions

    class Loaded:
        source, load_options, spec, max_active_dims = (
            "/models/splade",
            {"query_mode": "idf"},
            Spec(),
            7,
        )

    options = IndexOptions(sparse_encoder=Loaded(), sparse_leg={"prune": True})
    sent = options.for_batches()
    assert sent.sparse_encoder is None
    assert (sent.sparse_model, sent.sparse_options) == ("/models/splade", {"query_mode": "idf"})
    assert sent.sparse_leg == {"prune": True}
    assert options.sparse_spec() == Spec() and IndexOptions().sparse_spec() is None
    assert IndexOptions().load_sparse() is None
