"""Index administration: create, read the contract, resolve an alias, describe.

Each operation is written once as steps (:mod:`es_semantic.elastic.calls`); the plain functions run
them with a sync client, and the async indexer runs the same steps with an async one."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from typing import Any

from elasticsearch import ApiError, Elasticsearch, NotFoundError

from es_semantic.cluster import ENTERPRISE_INDEX_OPTIONS, ClusterInfo
from es_semantic.elastic.calls import Call, Steps, run
from es_semantic.elastic.client import probe_steps
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
from es_semantic.schema.tuning import TUNING_KEY, tuning_from_mapping_response

log = logging.getLogger(__name__)


def check_analyzer_steps(analyzer: str) -> Steps[None]:
    """Ask the cluster to run ``analyzer`` once; a plugin analyzer it lacks gets a clear error."""
    if analyzer in BUILTIN_ANALYZERS:
        return
    answer = yield Call("indices.analyze", {"analyzer": analyzer, "text": "检索 search"})
    if answer.status == 400:
        raise ConfigError(analyzer_hint(analyzer))
    answer.raise_for_error()


def create_index_steps(
    index: str, contract: IndexContract, *, recreate: bool = False, **body_options: Any
) -> Steps[bool]:
    """Create ``index`` for ``contract``; False when it already existed (never deletes unless
    ``recreate``, which deletes the existing index first and logs that it did)."""
    exists = bool((yield Call("indices.exists", {"index": index})).raise_for_error())
    if exists and not recreate:
        return False
    yield from check_analyzer_steps(contract.analyzer)
    cluster = yield from probe_steps()
    body = index_body(contract, cluster=cluster, **body_options)
    if exists:
        log.warning("deleting index %s (--recreate)", index)
        (yield Call("indices.delete", {"index": index})).raise_for_error()
    answer = yield Call("indices.create", {"index": index, **body})
    if answer.error is not None:
        if answer.status == 400 and "resource_already_exists" in str(answer.error.error):
            return False  # a concurrent run created it first
        if answer.status == 400:
            raise ConfigError(
                f"the cluster refused to create index {index!r}: {answer.error.message}"
            )
        if answer.status == 403:
            raise creation_forbidden(index, answer.error, cluster)
        answer.raise_for_error()
    return True


def creation_forbidden(index: str, error: ApiError, cluster: ClusterInfo) -> ConfigError:
    """A 403 from ``indices.create`` as one line: a licence refusal (bbq_disk on a basic
    licence) names the feature and the licence, any other one the missing privilege."""
    body = error.body if isinstance(error.body, Mapping) else {}
    cause: Mapping[str, Any] = body["error"] if isinstance(body.get("error"), Mapping) else {}
    root: Mapping[str, Any] = (cause.get("root_cause") or [cause])[0]
    reason = " ".join(str(root.get("reason") or cause.get("reason") or error.message).split())
    if "licen" not in reason.lower():
        return ConfigError(
            f"the cluster refused to create index {index!r} (HTTP 403: {reason}): connect as a "
            "user with the create_index privilege on it"
        )
    feature = root.get("license.expired.feature") or "this index's settings"
    others = [o for o in cluster.supported_index_options() if o not in ENTERPRISE_INDEX_OPTIONS]
    state = f"; this cluster's licence is {cluster.license_state}" if cluster.license_type else ""
    return ConfigError(
        f"the cluster refused to create index {index!r}: {feature} needs an enterprise or trial "
        f"licence{state} ({reason}): choose another --index-options ({', '.join(others)}) or "
        "upgrade the licence"
    )


def create_index(
    es: Elasticsearch,
    index: str,
    contract: IndexContract,
    *,
    recreate: bool = False,
    **body_options: Any,
) -> bool:
    """:func:`create_index_steps` with a sync client."""
    return run(es, create_index_steps(index, contract, recreate=recreate, **body_options))


def read_contract_steps(index: str) -> Steps[IndexContract]:
    """The contract of ``index`` (or of the indices behind an alias, which must agree)."""
    contract, _ = yield from read_pinned_steps(index)
    return contract


def read_pinned_steps(index: str) -> Steps[tuple[IndexContract, list[str]]]:
    """The contract of ``index`` and the concrete indices it was read from (sorted): a run
    that reads ``index`` more than once checks each read against them, since an alias moves
    (``migrate`` swaps it to an index another model wrote)."""
    answer = yield Call("indices.get_mapping", {"index": index})
    if answer.status == 404:
        raise missing_index_error(index)
    mapping = dict(answer.raise_for_error())
    return contract_from_mapping_response(mapping, index), sorted(mapping)


def add_metadata_field_steps(
    index: str, contract: IndexContract, name: str, kind: str
) -> Steps[IndexContract]:
    """The contract with metadata field ``name`` (added to the mapping and ``_meta`` when it is
    not there yet: a new field is allowed on a live index).

    A put-mapping replaces ``_meta`` whole, so each index (each one behind an alias) gets its
    own ``_meta`` as read just now back, with the field added to the contract found there, not
    to ``contract`` (read earlier: another writer may have changed it since)."""
    if name in contract.metadata_fields:
        return contract
    mapping = (yield Call("indices.get_mapping", {"index": index})).raise_for_error()
    for concrete, entry in sorted(mapping.items()):
        meta = dict((entry.get("mappings") or {}).get("_meta") or {})  # keep other keys
        current = IndexContract.from_meta(meta, concrete)
        if name in current.metadata_fields:
            continue
        fields = {**current.metadata_fields, name: kind}
        put = {"index": concrete, "properties": {name: {"type": kind}},
               "meta": {**meta, **replace(current, metadata_fields=fields).to_meta()}}  # fmt: skip
        (yield Call("indices.put_mapping", put)).raise_for_error()
    return replace(contract, metadata_fields={**contract.metadata_fields, name: kind})


def read_contract(es: Elasticsearch, index: str) -> IndexContract:
    """:func:`read_contract_steps` with a sync client."""
    return run(es, read_contract_steps(index))


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


def resolve_write_index_steps(name: str) -> Steps[str]:
    """``name`` itself, or the concrete index behind alias ``name``.

    Indexers write there, not to the alias: when a migration later moves the alias to an index
    built with another model, a writer still holding the old model fails loudly on the old
    (write-blocked) index instead of putting old-model vectors into the new one."""
    answer = yield Call("indices.get_alias", {"name": name})
    if answer.status == 404:
        return name
    return write_index_of(name, answer.raise_for_error())


def resolve_write_index(es: Elasticsearch, name: str) -> str:
    """:func:`resolve_write_index_steps` with a sync client."""
    return run(es, resolve_write_index_steps(name))


def index_info(es: Elasticsearch, index: str) -> dict[str, Any]:
    """Contract, document count, mapping summary and a vector memory estimate."""
    return run(es, index_info_steps(index))


def index_info_steps(index: str) -> Steps[dict[str, Any]]:
    """:func:`index_info` as steps (the service runs them with its async client)."""
    contract = yield from read_contract_steps(index)
    count = int((yield Call("count", {"index": index})).raise_for_error()["count"])
    mapping = (yield Call("indices.get_mapping", {"index": index})).raise_for_error()
    fields: dict[str, str] = {}
    for entry in mapping.values():
        for name, spec in entry.get("mappings", {}).get("properties", {}).items():
            fields[name] = spec.get("type", "object")
    entries: list[dict[str, Any]] = list(mapping.values())
    first: dict[str, Any] = entries[0].get("mappings", {}) if entries else {}
    effective, origin = effective_index_options(first, contract, (yield from probe_steps()))
    vectors = count
    if contract.nested:  # one vector per passage: count the nested objects
        aggs = {"p": {"nested": {"path": PASSAGES_FIELD}}}
        resp = (yield Call("search", {"index": index, "size": 0, "aggs": aggs})).raise_for_error()
        vectors = int(resp["aggregations"]["p"]["doc_count"])
    tuning = tuning_from_mapping_response(mapping)
    return {
        "index": index,
        "indices": sorted(mapping),
        "count": count,
        "vectors": vectors,
        "contract": contract.to_meta()["es_semantic"],
        "fields": fields,
        "index_options": {"type": effective, "from": origin},
        "vector_memory_estimate_bytes": int(vectors * vector_bytes(contract.dims, effective)),
        "tuning": tuning.to_meta()[TUNING_KEY] if tuning else None,
    }


def delete_index_quietly(es: Elasticsearch, index: str) -> None:
    """Delete ``index`` if it exists (used by the quickstart for its own index)."""
    try:
        es.indices.delete(index=index)
    except NotFoundError:
        pass
    except ApiError as exc:
        log.warning("could not delete index %s: %s", index, exc.message)
