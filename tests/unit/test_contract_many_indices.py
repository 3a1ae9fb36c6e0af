"""A name behind which several indices answer (an alias, ``a,b``, ``logs-*``): one query goes
to all of them, so every contract must agree on what the query is made and sent with (the
dense model and its query options, the vector field and similarity, the sparse leg's model),
not only on the dense model's fingerprint, dims and pooling."""

from __future__ import annotations

from dataclasses import replace

import pytest

from es_semantic.errors import IndexContractError
from es_semantic.schema.contract import IndexContract, SparseLeg, contract_from_mapping_response
from tests.unit.test_sparse_contract import DENSE, Spec


def mapping(**contracts: IndexContract) -> dict[str, object]:
    return {name: {"mappings": {"_meta": c.to_meta()}} for name, c in contracts.items()}


def flat(**options: object) -> IndexContract:
    return IndexContract.from_encoder(DENSE, chunking="none", **options)


SPLADE = SparseLeg.from_model(Spec())
OTHER_SPLADE = SparseLeg.from_model(Spec(name="other-splade", fingerprint="t" * 16))
PREFIXED = replace(DENSE, query_prefix="query: ")


@pytest.mark.parametrize(
    ("a", "b"),
    [
        (flat(sparse=SPLADE), flat(sparse=OTHER_SPLADE)),  # sparse queries of one model only
        (flat(sparse=SPLADE), flat()),  # a sparse leg on one index only
        (flat(), IndexContract.from_encoder(DENSE)),  # embedding vs passages.embedding
        (flat(), IndexContract.from_encoder(PREFIXED, chunking="none")),  # a query prefix
        (flat(), flat(similarity="l2_norm")),  # scores and thresholds in another unit
    ],
)
def test_indices_whose_queries_differ_are_refused(a: IndexContract, b: IndexContract) -> None:
    assert a.vector_space == b.vector_space  # what the check compared before
    with pytest.raises(IndexContractError, match=r"'a,b' covers indices .*\['a', 'b'\]"):
        contract_from_mapping_response(mapping(a=a, b=b), "a,b")


def test_indices_that_differ_only_in_fields_or_records_agree() -> None:
    a = flat(metadata_fields={"lang": "keyword"}, sparse=SPLADE)
    b = replace(
        flat(metadata_fields={"year": "long"}, sparse=replace(SPLADE, prune=True)),
        backend="onnx",
        precision="float16",
    )
    assert contract_from_mapping_response(mapping(a=a, b=b), "logs-*") == a
