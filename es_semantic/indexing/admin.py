"""Index administration over a sync client: create, read the contract, describe."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from elasticsearch import ApiError, BadRequestError, Elasticsearch, NotFoundError

from es_semantic.client import probe_cluster
from es_semantic.errors import ConfigError
from es_semantic.schema.contract import (
    PASSAGES_FIELD,
    IndexContract,
    contract_from_mapping_response,
    missing_index_error,
)
from es_semantic.schema.mapping import (
    BUILTIN_ANALYZERS,
    analyzer_hint,
    effective_index_options,
    index_body,
    vector_bytes,
)

log = logging.getLogger(__name__)


def check_analyzer(es: Elasticsearch, analyzer: str) -> None:
    """Ask the cluster to run ``analyzer`` once; a plugin analyzer it lacks gets a clear error."""
    if analyzer in BUILTIN_ANALYZERS:
        return
    try:
        es.indices.analyze(analyzer=analyzer, text="检索 search")
    except BadRequestError:
        raise ConfigError(analyzer_hint(analyzer)) from None


def create_index(
    es: Elasticsearch,
    index: str,
    contract: IndexContract,
    *,
    recreate: bool = False,
    **body_options: Any,
) -> bool:
    """Create ``index`` for ``contract``; returns False when it already existed (never deletes
    unless ``recreate``, which deletes the existing index first and logs that it did)."""
    exists = bool(es.indices.exists(index=index))
    if exists and not recreate:
        return False
    check_analyzer(es, contract.analyzer)
    body = index_body(contract, cluster=probe_cluster(es), **body_options)
    if exists:
        log.warning("deleting index %s (--recreate)", index)
        es.indices.delete(index=index)
    try:
        es.indices.create(index=index, settings=body["settings"], mappings=body["mappings"])
    except BadRequestError as exc:
        if "resource_already_exists" in str(exc.error):
            return False  # a concurrent run created it first
        raise ConfigError(f"the cluster refused to create index {index!r}: {exc.message}") from None
    return True


def read_contract(es: Elasticsearch, index: str) -> IndexContract:
    """The contract of ``index`` (or of the write index behind an alias)."""
    try:
        resp = es.indices.get_mapping(index=index)
    except NotFoundError:
        raise missing_index_error(index) from None
    return contract_from_mapping_response(dict(resp.body), index)


def write_index_of(name: str, aliases: Mapping[str, Any]) -> str:
    """The concrete index that writes to alias ``name`` go to (from a get-alias response)."""
    if len(aliases) == 1:
        return str(next(iter(aliases)))
    writers = [
        index
        for index, entry in aliases.items()
        if (entry.get("aliases", {}).get(name) or {}).get("is_write_index")
    ]
    if len(writers) != 1:
        raise ConfigError(
            f"alias {name!r} points at {len(aliases)} indices and none is its write index: "
            "index into one of them by name, or set is_write_index on one"
        )
    return str(writers[0])


def resolve_write_index(es: Elasticsearch, name: str) -> str:
    """``name`` itself, or the concrete index behind alias ``name``.

    Indexers write there, not to the alias: when a migration later moves the alias to an index
    built with another model, a writer still holding the old model fails loudly on the old
    (write-blocked) index instead of putting old-model vectors into the new one."""
    try:
        aliases = es.indices.get_alias(name=name).body
    except NotFoundError:
        return name
    return write_index_of(name, aliases)


def index_info(es: Elasticsearch, index: str) -> dict[str, Any]:
    """Contract, document count, mapping summary and a vector memory estimate."""
    contract = read_contract(es, index)
    count = int(es.count(index=index)["count"])
    mapping = es.indices.get_mapping(index=index).body
    fields: dict[str, str] = {}
    for entry in mapping.values():
        for name, spec in entry.get("mappings", {}).get("properties", {}).items():
            fields[name] = spec.get("type", "object")
    entries: list[dict[str, Any]] = list(mapping.values())
    first: dict[str, Any] = entries[0].get("mappings", {}) if entries else {}
    effective, origin = effective_index_options(first, contract, probe_cluster(es))
    vectors = count
    if contract.nested:  # one vector per passage: count the nested objects
        resp = es.search(index=index, size=0, aggs={"p": {"nested": {"path": PASSAGES_FIELD}}})
        vectors = int(resp["aggregations"]["p"]["doc_count"])
    return {
        "index": index,
        "indices": sorted(mapping),
        "count": count,
        "vectors": vectors,
        "contract": contract.to_meta()["es_semantic"],
        "fields": fields,
        "index_options": {"type": effective, "from": origin},
        "vector_memory_estimate_bytes": int(vectors * vector_bytes(contract.dims, effective)),
    }


def delete_index_quietly(es: Elasticsearch, index: str) -> None:
    """Delete ``index`` if it exists (used by the quickstart for its own index)."""
    try:
        es.indices.delete(index=index)
    except NotFoundError:
        pass
    except ApiError as exc:
        log.warning("could not delete index %s: %s", index, exc.message)
