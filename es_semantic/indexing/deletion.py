"""Delete documents by id or by metadata filter, with a dry run that lists them first."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from elasticsearch import Elasticsearch, helpers

from es_semantic.errors import InputError
from es_semantic.indexing.actions import parse_bulk_item
from es_semantic.indexing.admin import read_contract
from es_semantic.schema.filters import build_filters

SAMPLE = 20
NOT_FOUND = 404  # a delete of a document already gone: what was wanted, no failure


@dataclass
class DeleteReport:
    """What a delete matched and removed (``deleted`` is 0 on a dry run)."""

    index: str
    matched: int = 0
    deleted: int = 0
    dry_run: bool = False
    sample_ids: list[str] = field(default_factory=list)
    missing_ids: list[str] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)  # (id, the server's reason)

    def to_json(self) -> dict[str, Any]:
        data = dict(self.__dict__)
        data["failures"] = [{"id": doc_id, "reason": why} for doc_id, why in self.failures]
        return data

    def failed_line(self) -> str:
        """One line on the deletes the cluster refused (empty when none was)."""
        if not self.failures:
            return ""
        doc_id, reason = self.failures[0]
        return (
            f"{self.index}: could not delete {len(self.failures)} of {self.matched} documents "
            f"missing from the input (first: {doc_id}: {reason}); they are still in the index: "
            "re-run the same command"
        )


def delete_documents(
    es: Elasticsearch,
    index: str,
    *,
    ids: Sequence[str] = (),
    filters: Mapping[str, Any] | None = None,
    dry_run: bool = False,
) -> DeleteReport:
    """Delete ``ids`` or every document matching ``filters`` (metadata fields only)."""
    if bool(ids) == bool(filters):
        raise InputError("delete needs either ids or a filter (not both, not neither)")
    contract = read_contract(es, index)
    report = DeleteReport(index, dry_run=dry_run)
    if ids:
        found = es.mget(index=index, ids=list(ids), source=False)["docs"]
        present = [str(d["_id"]) for d in found if d.get("found")]
        report.missing_ids = [i for i in ids if i not in set(present)]
        report.matched, report.sample_ids = len(present), present[:SAMPLE]
        if not dry_run and present:
            resp = es.delete_by_query(index=index, query={"ids": {"values": present}}, refresh=True)
            report.deleted = int(resp["deleted"])
        return report
    query = {"bool": {"filter": build_filters(filters, list(contract.metadata_fields))}}
    sample = es.search(index=index, query=query, size=SAMPLE, source=False, track_total_hits=True)
    report.matched = int(sample["hits"]["total"]["value"])
    report.sample_ids = [str(h["_id"]) for h in sample["hits"]["hits"]]
    if not dry_run and report.matched:
        report.deleted = int(es.delete_by_query(index=index, query=query, refresh=True)["deleted"])
    return report


def delete_missing(
    es: Elasticsearch, index: str, seen_ids: set[str], *, dry_run: bool = False
) -> DeleteReport:
    """Delete the documents of ``index`` (pass the concrete index the run wrote to, not an
    alias over others) whose ids were not in this run's input, each from the index the scan
    found it in. A delete the cluster refuses (after the client's retries of 429s) is in
    ``failures``; one of a document already gone counts as deleted."""
    report = DeleteReport(index, dry_run=dry_run)
    stored = (
        (str(h["_index"]), str(h["_id"]))
        for h in helpers.scan(es, index=index, query={"query": {"match_all": {}}, "source": False})
    )
    missing = [(where, doc_id) for where, doc_id in stored if doc_id not in seen_ids]
    report.matched, report.sample_ids = len(missing), [i for _, i in missing[:SAMPLE]]
    if dry_run or not missing:
        return report
    actions = ({"_op_type": "delete", "_index": where, "_id": i} for where, i in missing)
    for ok, item in helpers.streaming_bulk(es, actions, raise_on_error=False, chunk_size=500,
                                           max_retries=3, initial_backoff=1):  # fmt: skip
        outcome = parse_bulk_item(ok, item)
        status = [op.get("status") for op in item.values() if isinstance(op, Mapping)]
        if outcome.ok or status == [NOT_FOUND]:
            report.deleted += 1
        else:
            report.failures.append((outcome.doc_id, outcome.reason))
    es.indices.refresh(index=index)
    return report
