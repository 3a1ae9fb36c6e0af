"""Store tuned settings in an index's mapping ``_meta`` (steps for ``calls.run``)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping

from es_semantic.elastic.calls import Call, Steps
from es_semantic.schema.contract import IndexContract, missing_index_error
from es_semantic.schema.tuning import Tuning, with_tuning


def data_digest(queries: Mapping[str, str], qrels: Mapping[str, Mapping[str, int]]) -> str:
    """A short digest of the queries and judgements tuned on (order-independent)."""
    canonical = json.dumps(
        {"queries": dict(sorted(queries.items())),
         "qrels": {q: dict(sorted(r.items())) for q, r in sorted(qrels.items())}},
        sort_keys=True, ensure_ascii=False,
    )  # fmt: skip
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def save_tuning_steps(index: str, tuning: Tuning) -> Steps[list[str]]:
    """Write ``tuning`` into the ``_meta`` of ``index`` (each index behind an alias), keeping
    the contract and every other key: a put-mapping ``_meta`` replaces the whole object, so
    each index's current ``_meta`` is read and written back with the tuning added. An index
    without an es-semantic contract is refused. Returns the indices written."""
    answer = yield Call("indices.get_mapping", {"index": index})
    if answer.status == 404:
        raise missing_index_error(index)
    mapping = answer.raise_for_error()
    for name, entry in sorted(mapping.items()):
        meta = (entry.get("mappings") or {}).get("_meta")
        IndexContract.from_meta(meta, name)  # raises, naming the index, when there is none
        put = {"index": name, "meta": with_tuning(meta, tuning)}
        (yield Call("indices.put_mapping", put)).raise_for_error()
    return sorted(mapping)
