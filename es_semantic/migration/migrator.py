"""Zero-downtime model migration behind an alias: new index, backfill, eval gate, atomic swap.

Queries keep going to the alias (and so to the old index) until one ``_aliases`` request moves
it. Before that, writes to the old index are blocked for a short catch-up pass (what changed
during the long first pass), so no write is lost. The old index is kept, read-only, until
``drop_old``. A re-run resumes: the new index's name is stable for the same target, and
documents already copied are skipped by content hash, unencoded. Only an index whose ``_meta``
records this migration (alias and old index) is resumed; any other existing index is refused
before a single write.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elastic_transport import TransportError
from elasticsearch import ApiError, Elasticsearch, NotFoundError

from es_semantic.errors import ConfigError, MigrationRefused
from es_semantic.evaluation.runner import build_modes, run_legs, summarise
from es_semantic.indexing.admin import create_index, read_contract
from es_semantic.indexing.deletion import delete_missing
from es_semantic.indexing.indexer import Indexer
from es_semantic.indexing.pit import pit_pages
from es_semantic.migration.plan import (
    MIGRATION_META_KEY,
    GateResult,
    layout_differences,
    migration_meta,
    new_contract,
    new_index_name,
    resume_refusal,
    swap_actions,
    with_sparse_leg,
)
from es_semantic.schema.contract import IndexContract, missing_index_error
from es_semantic.search.searcher import Searcher
from es_semantic.types import Document, IndexReport, ReadFailure

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.encoding.sparse import SparseEncoder

log = logging.getLogger(__name__)
PAGE_SIZE = 500
PIT_KEEP_ALIVE = "10m"


@dataclass(frozen=True)
class EvalGate:
    """Compare old and new index on these queries before switching."""

    queries: Mapping[str, str]
    qrels: Mapping[str, Mapping[str, int]]
    old_encoder: Encoder
    mode: str = "knn"
    metric: str = "ndcg@10"
    max_drop: float = 0.01


@dataclass
class MigrationReport:
    alias: str
    old_index: str
    new_index: str
    copy: IndexReport | None = None
    catch_up: IndexReport | None = None
    removed_stale: int = 0
    gate: GateResult | None = None
    swapped: bool = False
    dropped: str | None = None
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "alias": self.alias,
            "old_index": self.old_index,
            "new_index": self.new_index,
            "copy": self.copy.to_json() if self.copy else None,
            "catch_up": self.catch_up.to_json() if self.catch_up else None,
            "removed_stale": self.removed_stale,
            "gate": self.gate.to_json() if self.gate else None,
            "swapped": self.swapped,
            "dropped": self.dropped,
            "seconds": round(self.seconds, 3),
            "notes": self.notes,
        }


def resolve_alias(es: Elasticsearch, alias: str) -> tuple[str, dict[str, Any]]:
    """The one index behind ``alias`` and the alias's properties there."""
    try:
        found = es.indices.get_alias(name=alias).body
    except NotFoundError:
        if es.indices.exists(index=alias):
            raise ConfigError(
                f"{alias!r} is an index, not an alias: a zero-downtime migration moves an alias. "
                f"Point your application at an alias first, e.g. POST _aliases "
                f'{{"actions": [{{"add": {{"index": "{alias}", "alias": "{alias}-live"}}}}]}}, '
                f"then run migrate --from {alias}-live"
            ) from None
        raise missing_index_error(alias) from None
    if len(found) != 1:
        raise ConfigError(
            f"alias {alias!r} points at {len(found)} indices ({', '.join(sorted(found))}); "
            "migrate needs an alias on exactly one index"
        )
    ((index, entry),) = found.items()
    return index, dict(entry.get("aliases", {}).get(alias, {}))


def stored_documents(
    es: Elasticsearch, index: str, contract: IndexContract, *, page_size: int = PAGE_SIZE
) -> Iterator[Document | ReadFailure]:
    """Every document's stored text and metadata, read through a point in time with
    ``search_after`` (a consistent snapshot, whatever is written meanwhile)."""
    fields = [*contract.text_fields, *contract.metadata_fields]
    with closing(pit_pages(es, index, page_size=page_size, keep_alive=PIT_KEEP_ALIVE,
                           source_includes=fields)) as pages:  # fmt: skip
        for hits in pages:
            for hit in hits:
                yield _to_document(hit, contract, index)


def _to_document(
    hit: Mapping[str, Any], contract: IndexContract, index: str
) -> Document | ReadFailure:
    source = hit.get("_source") or {}
    doc_id = str(hit["_id"])
    texts = {f: source[f] for f in contract.text_fields if isinstance(source.get(f), str)}
    origin = f"{index}/{doc_id}"
    if not any(t.strip() for t in texts.values()):
        reason = (
            f"no stored text in {', '.join(contract.text_fields)}: the source index keeps no "
            "text for this document, so it cannot be re-encoded; re-index it from its source"
        )
        return ReadFailure(origin, reason, {"id": doc_id, **source})
    metadata = {f: source[f] for f in contract.metadata_fields if f in source}
    return Document(doc_id, texts, metadata, origin)


def migrate(
    es: Elasticsearch,
    alias: str,
    encoder: Encoder,
    *,
    new_index: str | None = None,
    gate: EvalGate | None = None,
    drop_old: bool = False,
    freeze: bool = True,
    batch_size: int = 256,
    chunk_size: int = 500,
    dead_letter: str | Path | None = None,
    progress: bool = False,
    sparse_encoder: SparseEncoder | None = None,
    **overrides: Any,
) -> MigrationReport:
    """Move ``alias`` to a new index built with ``encoder`` (see the module docstring).

    ``freeze``: before the swap, block writes to the old index and copy what changed since the
    first pass, so no write is lost (writers see a brief ``cluster_block_exception`` instead).
    ``batch_size``: documents encoded at a time; ``chunk_size``: documents per bulk request.
    ``dead_letter``: file for documents that could not be copied; ``{index}`` in it becomes the
    new index's name. ``sparse_encoder``: the sparse leg's model (needed when the old index has
    a sparse leg; another model's makes a new leg, one given to an index without adds it).
    ``overrides``: contract options for the new index (chunking, chunk_tokens, similarity, ...);
    everything else is carried over from the old index's contract."""
    started = time.perf_counter()
    old_index, properties = resolve_alias(es, alias)
    old = read_contract(es, old_index)
    target = new_contract(old, encoder.config, **overrides)
    active = sparse_encoder.max_active_dims if sparse_encoder is not None else None
    spec = sparse_encoder.spec if sparse_encoder is not None else None
    target = with_sparse_leg(target, old, spec, alias, active)
    name = new_index or new_index_name(alias, target)
    report = MigrationReport(alias, old_index, name)
    if old_index == name:
        return _already_done(es, report, drop_old, started)
    created = create_index(es, name, target, extra_meta=migration_meta(alias, old_index))
    if not created:
        _check_resumable(es, report)  # before any write: it may be another application's index
        _check_layout(es, report, target)
    report.notes.append(
        f"created {name}" if created else f"{name} exists: resuming (copied documents skipped)"
    )
    if isinstance(dead_letter, str):
        dead_letter = dead_letter.replace("{index}", name)
    options = {
        "batch_size": batch_size, "chunk_size": chunk_size, "dead_letter": dead_letter,
        "progress": progress, "sparse_encoder": sparse_encoder,
    }  # fmt: skip
    report.copy = _copy(es, report, encoder, old, options, created=created)
    if gate is not None:
        report.gate = run_gate(es, gate, old_index, name, encoder)
        if not report.gate.passed:
            refused = MigrationRefused(
                f"{report.gate.describe()}; the alias {alias!r} still points at {old_index}. "
                f"Inspect {name}, or raise --max-drop to accept it."
            )
            refused.report = report.copy  # what was copied, as every stopped run carries
            raise refused
    if freeze:
        swap = swap_actions(alias, old_index, name, properties)
        report.catch_up = _freeze_and_swap(es, report, encoder, old, options, swap)
        report.notes.append(f"{old_index} is read-only now (index.blocks.write)")
    else:
        es.indices.update_aliases(actions=swap_actions(alias, old_index, name, properties))
    report.swapped = True
    if drop_old:
        _drop(es, report, old_index)
    report.seconds = time.perf_counter() - started
    return report


def _drop(es: Elasticsearch, report: MigrationReport, index: str) -> None:
    """Delete the old index after the swap; a refusal is a note, not a failed migration (the
    alias has moved: a caller told 'failed' might undo or repeat it)."""
    try:
        es.indices.delete(index=index)
    except (ApiError, TransportError) as exc:
        reason = getattr(exc, "message", None) or type(exc).__name__
        report.notes.append(
            f"the alias moved, but deleting {index} failed ({reason}): delete it yourself, or "
            "re-run the same command with --drop-old"
        )
        return
    report.dropped = index


def _copy(
    es: Elasticsearch,
    report: MigrationReport,
    encoder: Encoder,
    old: IndexContract,
    options: Mapping[str, Any],
    *,
    created: bool,
) -> IndexReport:
    """One pass over the old index into the new one: changed documents are encoded, unchanged
    ones skipped, documents no longer in the old index deleted from the new one."""
    indexer = Indexer(es, report.new_index, encoder, track_ids=True, **options)
    indexer.ensure_index()  # checks an existing index's contract against the encoder
    indexer.created = created  # a new index has nothing to skip: no look-ups
    total = int(es.count(index=report.old_index)["count"]) if indexer.options.progress else None
    copied = indexer.index(stored_documents(es, report.old_index, old), total=total)
    if copied.failed:
        where = copied.dead_letter or "the error's report: pass dead_letter= for a file"
        refused = MigrationRefused(
            f"{copied.failed} documents could not be copied into {report.new_index} (see "
            f"{where}); the alias {report.alias!r} still points at "
            f"{report.old_index}. Fix them and re-run: copied documents are skipped."
        )
        refused.report = copied  # every document: copied, skipped or failed
        raise refused
    stale = delete_missing(es, report.new_index, indexer.seen_ids or set())
    report.removed_stale += stale.deleted
    if stale.failures:  # the new index would hold documents the old one no longer has
        refused = MigrationRefused(
            f"{stale.failed_line()}; the alias {report.alias!r} still points at {report.old_index}"
        )
        refused.report = copied
        raise refused
    return copied


def _check_resumable(es: Elasticsearch, report: MigrationReport) -> None:
    """Refuse an existing target that is not this migration's own (its ``_meta`` record)."""
    name, old_index = report.new_index, report.old_index
    mappings = es.indices.get_mapping(index=name).body
    why = resume_refusal(mappings, name, report.alias, old_index)
    if why is not None:
        raise ConfigError(
            f"index {name!r} exists and is not this migration's target ({why}): resuming into "
            f"it would overwrite its documents and delete those not in {old_index}. Pass "
            f"another --to name (or leave --to out), or delete {name} if it is a leftover."
        )


def _check_layout(es: Elasticsearch, report: MigrationReport, target: IndexContract) -> None:
    """Refuse to resume into this migration's target when it was made with another layout
    (a re-run with other --similarity, --chunk, ... and the same --to)."""
    differences = layout_differences(read_contract(es, report.new_index), target)
    if differences:
        raise ConfigError(
            f"index {report.new_index!r} was made by an earlier run of this migration with "
            f"{'; '.join(differences)}: resuming would keep that layout. Pass another --to "
            f"(or leave --to out), or delete {report.new_index} to start over"
        )


def _freeze_and_swap(
    es: Elasticsearch,
    report: MigrationReport,
    encoder: Encoder,
    old: IndexContract,
    options: Mapping[str, Any],
    swap: list[dict[str, Any]],
) -> IndexReport:
    """No write may land in the old index unseen: block writes, copy what changed, swap. On
    any failure or interrupt (Ctrl-C; SIGTERM through the CLI) the block is lifted again,
    unless the alias has already moved (then a write to the old index would be lost) or the
    index was write-blocked before the migration began (that block is its owner's)."""
    blocked_before = _write_blocked(es, report.old_index)  # someone else's block stays
    try:
        _block_writes(es, report.old_index)
        es.indices.refresh(index=report.old_index)
        catch_up = _copy(es, report, encoder, old, options, created=False)
        es.indices.update_aliases(actions=swap)
    except BaseException:
        if not blocked_before:
            _unblock_unless_swapped(es, report)
        raise
    return catch_up


def _write_blocked(es: Elasticsearch, index: str) -> bool:
    body = es.indices.get_settings(index=index, name="index.blocks.write", flat_settings=True)
    value = body.get(index, {}).get("settings", {}).get("index.blocks.write", "false")
    return str(value).lower() == "true"


def _block_writes(es: Elasticsearch, index: str) -> None:
    """The add-index-block API, not the setting: it returns only once every shard refuses
    writes and the writes in flight have completed, so the catch-up pass sees them all."""
    answer = es.indices.add_block(index=index, block="write")
    if not (answer.get("acknowledged") and answer.get("shards_acknowledged")):
        raise MigrationRefused(
            f"the write block on {index} was not acknowledged by every shard in time "
            f"({dict(answer)}), so writes in flight may be missed; the alias still points at "
            f"{index}. Check the cluster's health and re-run: copied documents are skipped."
        )


def _unblock_unless_swapped(es: Elasticsearch, report: MigrationReport) -> None:
    index = report.old_index
    try:
        found = es.options(ignore_status=404).indices.get_alias(name=report.alias).body
        if report.new_index in found and index not in found:
            return  # the swap went through: the old index stays read-only
        # the remove-block API is 9.1+; the setting works on every version
        es.indices.put_settings(index=index, settings={"index.blocks.write": False})
    except (ApiError, TransportError) as exc:
        log.error(
            "could not lift the write block on %s (%s): lift it with PUT %s/_settings "
            '{"index.blocks.write": false}',
            index,
            exc,
            index,
        )


def _already_done(
    es: Elasticsearch, report: MigrationReport, drop_old: bool, started: float
) -> MigrationReport:
    """The alias already points at the target: only --drop-old is left to do."""
    report.notes.append(f"{report.alias} already points at {report.new_index}")
    if drop_old:
        meta = es.indices.get_mapping(index=report.new_index).body
        info = meta[report.new_index]["mappings"].get("_meta", {}).get(MIGRATION_META_KEY, {})
        previous = info.get("from_index")
        if previous and es.indices.exists(index=previous):
            _drop(es, report, previous)
        else:
            report.notes.append("no previous index left to drop")
    report.old_index = report.new_index
    report.seconds = time.perf_counter() - started
    return report


def run_gate(
    es: Elasticsearch, gate: EvalGate, old_index: str, new_index: str, encoder: Encoder
) -> GateResult:
    """Score both indices on the gate's queries, each with its own model."""
    return GateResult(
        gate.metric,
        gate.mode,
        _score(es, old_index, gate.old_encoder, gate),
        _score(es, new_index, encoder, gate),
        gate.max_drop,
    )


def _score(es: Elasticsearch, index: str, encoder: Encoder, gate: EvalGate) -> float:
    searcher = Searcher(es, index, encoder)
    queries = {q: t for q, t in gate.queries.items() if q in gate.qrels}
    if not queries:
        raise ConfigError("the eval gate's queries and qrels share no query id")
    legs = run_legs(searcher, queries)
    runs = build_modes([gate.mode], legs, queries, searcher=searcher)
    qrels = {q: dict(r) for q, r in gate.qrels.items() if q in queries}
    return summarise(runs[gate.mode], qrels, [gate.metric])[gate.metric]
