"""Index body from the JSON template in ``mappings/`` and a contract (pure, no I/O)."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

from es_semantic.cluster import ClusterInfo
from es_semantic.errors import ConfigError
from es_semantic.schema.contract import PASSAGES_FIELD, IndexContract

BUILTIN_ANALYZERS = frozenset(
    "standard simple whitespace stop keyword pattern fingerprint english french german spanish "
    "italian portuguese dutch russian arabic cjk chinese brazilian czech danish finnish greek "
    "hindi hungarian indonesian irish latvian lithuanian norwegian persian romanian sorani "
    "swedish turkish thai bengali bulgarian catalan galician armenian basque".split()
)
PLUGIN_ANALYZERS = {
    "smartcn": "analysis-smartcn",
    "ik_max_word": "analysis-ik",
    "ik_smart": "analysis-ik",
    "icu_analyzer": "analysis-icu",
    "kuromoji": "analysis-kuromoji",
    "nori": "analysis-nori",
}


@cache
def _template() -> dict[str, Any]:
    text = resources.files("es_semantic").joinpath("mappings/index.json").read_text("utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def vector_mapping(
    contract: IndexContract, *, m: int | None = None, ef_construction: int | None = None
) -> dict[str, Any]:
    """The ``dense_vector`` field for the contract's dims, similarity and index options (none
    sent when the contract leaves them to the cluster's default)."""
    field: dict[str, Any] = copy.deepcopy(_template()["field_templates"]["vector"])
    field.update(dims=contract.dims, similarity=contract.similarity)
    if contract.index_options is None:
        if m is not None or ef_construction is not None:
            raise ConfigError(
                "m and ef_construction need an explicit --index-options (hnsw, int8_hnsw, ...)"
            )
        return field
    options: dict[str, Any] = {"type": contract.index_options}
    if "hnsw" in contract.index_options:
        if m is not None:
            options["m"] = m
        if ef_construction is not None:
            options["ef_construction"] = ef_construction
    elif m is not None or ef_construction is not None:
        raise ConfigError(
            f"m and ef_construction apply to *hnsw index options, not {options['type']}"
        )
    field["index_options"] = options
    return field


def index_body(
    contract: IndexContract,
    *,
    m: int | None = None,
    ef_construction: int | None = None,
    shards: int | None = None,
    replicas: int | None = None,
    extra_meta: dict[str, Any] | None = None,
    cluster: ClusterInfo | None = None,
) -> dict[str, Any]:
    """``settings`` + ``mappings`` (with the contract in ``_meta``) for ``indices.create``.

    ``extra_meta``: more ``_meta`` keys beside the contract (e.g. where a migration came from).
    ``cluster``: refuse index options the cluster's version lacks; on 9.2+, where vectors
    leave ``_source`` by default, keep them there when the contract asks to."""
    if cluster is not None and contract.index_options is not None:
        cluster.check_index_options(contract.index_options)
    template = copy.deepcopy(_template())
    fields = template["field_templates"]
    mappings = template["mappings"]
    props = mappings["properties"]
    for name in contract.text_fields:
        props[name] = {**fields["text"], "analyzer": contract.analyzer}
    for name, kind in contract.metadata_fields.items():
        props[name] = {**fields["metadata"], "type": kind}
    if contract.image_field is not None:  # an image's path: filterable, shown with its hit
        props[contract.image_field] = {**fields["metadata"], "type": "keyword"}
    vector = vector_mapping(contract, m=m, ef_construction=ef_construction)
    if contract.nested:
        passages = fields["passages"]
        passages["properties"][contract.vector_field] = vector
        props[PASSAGES_FIELD] = passages
    else:
        props[contract.vector_field] = vector
    if contract.sparse is not None:
        props[contract.sparse.field] = sparse_mapping()
    if not contract.keep_vectors_in_source:
        mappings["_source"]["excludes"] = [contract.vector_path] + (
            [contract.sparse.field] if contract.sparse is not None else []
        )
    else:
        del mappings["_source"]
    mappings["_meta"] = {**(extra_meta or {}), **contract.to_meta()}
    settings = template["settings"]
    if contract.keep_vectors_in_source and cluster is not None and cluster.excludes_source_vectors:
        settings["index"]["mapping"] = {"exclude_source_vectors": False}
    if shards is not None:
        settings["index"]["number_of_shards"] = shards
    if replicas is not None:
        settings["index"]["number_of_replicas"] = replicas
    return {"settings": settings, "mappings": mappings}


def sparse_mapping() -> dict[str, Any]:
    """The sparse leg's field: a plain ``sparse_vector`` (8.11+ on every licence). Index-time
    pruning (``index_options.prune``, 8.19/9.1+) is not sent: older clusters refuse it; the
    leg's pruning is applied by the query instead."""
    return {"type": "sparse_vector"}


def analyzer_hint(analyzer: str) -> str:
    """What to do when a cluster does not know ``analyzer``."""
    plugin = PLUGIN_ANALYZERS.get(analyzer)
    if plugin:
        return (
            f"analyzer {analyzer!r} needs the {plugin} plugin, which this cluster does not have "
            f"(bin/elasticsearch-plugin install {plugin}); for Chinese without plugins use 'cjk'"
        )
    return (
        f"analyzer {analyzer!r} is not known to this cluster; "
        "built-in ones include standard, english, cjk"
    )


VECTOR_BYTES_PER_DIM = {"int8_hnsw": 1.0, "int8_flat": 1.0, "int4_hnsw": 0.5, "int4_flat": 0.5,
                        "bbq_hnsw": 1 / 8, "bbq_flat": 1 / 8, "bbq_disk": 1 / 8}  # fmt: skip


def vector_field_mapping(mappings: dict[str, Any], contract: IndexContract) -> dict[str, Any]:
    """The dense_vector field's mapping inside a get-mapping ``mappings`` object."""
    props = mappings.get("properties", {})
    if contract.nested:
        props = props.get(PASSAGES_FIELD, {}).get("properties", {})
    field: dict[str, Any] = props.get(contract.vector_field, {})
    return field


def effective_index_options(
    mappings: dict[str, Any], contract: IndexContract, cluster: ClusterInfo
) -> tuple[str, str]:
    """The vector index type in force and where it came from: the user's choice, what the
    cluster reports in the mapping, or its documented default for this version and dims."""
    if contract.index_options is not None:
        return contract.index_options, "chosen at creation"
    reported = vector_field_mapping(mappings, contract).get("index_options", {}).get("type")
    if reported:
        return str(reported), "cluster default (as the mapping reports it)"
    return cluster.default_index_options(contract.dims), f"cluster default for {cluster.number}"


def vector_bytes(dims: int, index_options: str) -> float:
    """Memory per vector: the float copy plus the quantized one the index type keeps."""
    return dims * (4 + VECTOR_BYTES_PER_DIM.get(index_options, 0.0))
