"""Model migration, the pure part: the new contract and index name, the gate, the alias swap.

The I/O (backfill, eval, swap) lives in :mod:`es_semantic.migration.migrator`.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from es_semantic.config import EncoderConfig
from es_semantic.errors import ConfigError
from es_semantic.schema.contract import IndexContract, SparseLeg, SparseModel

MIGRATION_META_KEY = "es_semantic_migration"  # in the new index's _meta: where it came from
# A sparse leg made for another model keeps the old leg's field and query pruning.
SPARSE_CARRIED = ("field", "prune", "tokens_freq_ratio_threshold", "tokens_weight_threshold")
# Kept from the old contract unless overridden: what the documents and queries look like.
CARRIED = (
    "text_fields",
    "metadata_fields",
    "similarity",
    "index_options",
    "analyzer",
    "keep_vectors_in_source",
    "chunking",
    "chunk_tokens",
    "chunk_overlap",
)
_UNSAFE = re.compile(r"[^a-z0-9_\-]+")


def new_contract(old: IndexContract, config: EncoderConfig, **overrides: Any) -> IndexContract:
    """The contract for ``config``'s model, carrying the old index's fields and layout."""
    if old.images or getattr(config, "modality", "text") != "text":
        raise ConfigError(
            f"an image index ({old.model_name}) or a CLIP model cannot be migrated: migrate "
            "re-encodes the stored text, and an index holds no image. Index the images into "
            "a new index with `es-semantic index NEW PATH... --format images --model CLIP`"
        )
    options = {name: getattr(old, name) for name in CARRIED}
    given = {k: v for k, v in overrides.items() if v is not None}
    if given.get("chunking", old.chunking) != old.chunking:
        del options["chunk_tokens"], options["chunk_overlap"]  # the new layout's defaults
    options.update(given)
    if options["chunking"] == "none":
        options["chunk_tokens"], options["chunk_overlap"] = 0, 0
    elif "chunk_tokens" in options:  # the old passage size may not fit the new model's window
        options["chunk_tokens"] = min(int(options["chunk_tokens"]), config.max_length)
        options["chunk_overlap"] = min(
            int(options.get("chunk_overlap") or 0), options["chunk_tokens"] // 2
        )
    return IndexContract.from_encoder(config, **options)


def with_sparse_leg(
    target: IndexContract, old: IndexContract, spec: SparseModel | None, alias: str,
    max_active_dims: int | None = None,
) -> IndexContract:  # fmt: skip
    """The new index's sparse leg: the old one's when ``spec`` is its model, a new one (with
    the old leg's field and pruning) for another model; an old leg needs its model given."""
    leg = old.sparse
    if spec is None:
        if leg is not None:
            raise ConfigError(
                f"{alias!r} has a sparse leg ({leg.model_name}): pass --sparse-model (Python: "
                "sparse_encoder=) so the new index gets its sparse vectors"
            )
        return target
    if leg is None or leg.model_fingerprint != spec.fingerprint:
        kept = {} if leg is None else {k: getattr(leg, k) for k in SPARSE_CARRIED}
        leg = SparseLeg.from_model(spec, max_active_dims=max_active_dims, **kept)
    elif getattr(spec, "folder", None):  # the same model: where it is now (older legs lack it)
        leg = replace(leg, model_path=getattr(spec, "folder", None),
                      model_package=getattr(spec, "package", None))  # fmt: skip
    return replace(target, sparse=leg)


def layout_differences(existing: IndexContract, target: IndexContract) -> list[str]:
    """What an existing target's layout has that this migration does not ask for (the
    options carried or overridden: fields, similarity, index options, chunking); the model
    itself is the indexer's contract check."""
    return [
        f"{name} {getattr(existing, name)!r} (asked: {getattr(target, name)!r})"
        for name in CARRIED
        if getattr(existing, name) != getattr(target, name)
    ]


def contract_key(contract: IndexContract) -> str:
    """A short digest of what makes two indices' vectors different."""
    essentials = contract.to_meta()["es_semantic"]
    essentials.pop("es_semantic_version", None)
    for where in ("model_path", "model_package"):  # where the sparse model is, not its vectors
        (essentials.get("sparse") or {}).pop(where, None)
    data = json.dumps(essentials, sort_keys=True).encode("utf-8")
    return hashlib.sha256(data).hexdigest()[:8]


def new_index_name(alias: str, contract: IndexContract) -> str:
    """``ALIAS-MODEL-KEY``: stable for the same target, so a re-run resumes the same index."""
    model = _UNSAFE.sub("-", contract.model_name.lower().rsplit("/", 1)[-1]).strip("-_")
    return f"{alias}-{model[:60] or 'model'}-{contract_key(contract)}"


@dataclass(frozen=True)
class GateResult:
    """The eval gate: the old and new index scored on the same queries."""

    metric: str
    mode: str
    old: float
    new: float
    max_drop: float

    @property
    def passed(self) -> bool:
        return self.new >= self.old - self.max_drop

    def describe(self) -> str:
        verdict = "passed" if self.passed else "FAILED"
        return (
            f"eval gate {verdict}: {self.mode} {self.metric} old {self.old:.4f}, new "
            f"{self.new:.4f} (change {self.new - self.old:+.4f}, allowed drop {self.max_drop})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "metric": self.metric, "mode": self.mode, "old": self.old, "new": self.new,
            "max_drop": self.max_drop, "passed": self.passed,
        }  # fmt: skip


def swap_actions(
    alias: str, old_index: str, new_index: str, alias_properties: Mapping[str, Any]
) -> list[dict[str, Any]]:
    """One atomic ``_aliases`` request: the alias leaves the old index and joins the new one
    with the same properties (filter, routing, is_write_index)."""
    kept = {k: v for k, v in alias_properties.items() if k in _ALIAS_PROPERTIES}
    return [
        {"remove": {"index": old_index, "alias": alias}},
        {"add": {"index": new_index, "alias": alias, **kept}},
    ]


_ALIAS_PROPERTIES = frozenset(
    {"filter", "routing", "index_routing", "search_routing", "is_write_index", "is_hidden"}
)


def migration_meta(alias: str, old_index: str) -> dict[str, Any]:
    """The record a migration target's ``_meta`` keeps of the migration that made it."""
    return {MIGRATION_META_KEY: {"alias": alias, "from_index": old_index}}


def resume_refusal(
    mappings: Mapping[str, Any], index: str, alias: str, old_index: str
) -> str | None:
    """Why the existing ``index`` may not be resumed as the migration of ``alias`` from
    ``old_index`` (``mappings``: a get-mapping response for ``index``); None when its ``_meta``
    records exactly that migration. Indices without the record (another application's, or
    made before it existed) are never taken for a resume."""
    if set(mappings) != {index}:
        return f"the name stands for {', '.join(sorted(mappings)) or 'no index'}"
    meta = (mappings[index].get("mappings") or {}).get("_meta") or {}
    record = meta.get(MIGRATION_META_KEY)
    if not isinstance(record, Mapping):
        return "its _meta records no migration"
    made_by = (record.get("alias"), record.get("from_index"))
    if made_by == (alias, old_index):
        return None
    return f"it was made by the migration of alias {made_by[0]!r} from {made_by[1]!r}"
