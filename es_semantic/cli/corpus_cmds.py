"""es-semantic duplicates (and clusters): what is in an index."""

from __future__ import annotations

import csv
import json
import shutil
from typing import Any

import click

from es_semantic.cli.common import client, connection_options, encoder, handle_errors, settings
from es_semantic.cli.sparse_options import load_sparse, sparse_model_option
from es_semantic.corpus.clusters import ClusterReport, cluster_index
from es_semantic.corpus.duplicates import find_duplicates
from es_semantic.corpus.pairs import DuplicatePair, best_of, group_pairs
from es_semantic.indexing.admin import read_contract
from es_semantic.schema.filters import parse_cli_filters


@click.command("duplicates")
@click.argument("index")
@click.option(
    "--threshold",
    type=float,
    default=0.9,
    show_default=True,
    help="least similarity of a pair: the cosine on cosine/dot_product indices, Elasticsearch's "
    "score on l2_norm (1/(1+d^2)) and max_inner_product (dot+1, or 1/(1-dot) below 0)",
)
@click.option("--top-k", type=click.IntRange(1, 1000), default=10, show_default=True,
              help="neighbours looked at per document (or passage)")  # fmt: skip
@click.option("--filter", "filters", multiple=True, help="only documents matching FIELD=VALUE")
@click.option("--limit", type=click.IntRange(1), help="scan at most N documents")
@click.option("--groups", is_flag=True, help="join pairs into groups (connected components)")
@click.option("--checkpoint", type=click.Path(dir_okay=False),
              help="resumable: documents done and pairs found so far (JSONL)")  # fmt: skip
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts")
@click.option("--csv", "csv_path", type=click.Path(dir_okay=False), help="write pairs as CSV")
@click.option("--quiet", is_flag=True, help="no progress bar")
@connection_options
@handle_errors
def duplicates_cmd(
    index: str,
    threshold: float,
    top_k: int,
    filters: tuple[str, ...],
    limit: int | None,
    groups: bool,
    checkpoint: str | None,
    as_json: bool,
    csv_path: str | None,
    quiet: bool,
    **options: Any,
) -> None:
    """Find near-duplicate documents in INDEX: pairs at or above --threshold, highest first.

    One kNN search per document (per passage on chunked indices), reading the index once
    through a point in time; the vectors come from the index (re-encoded from the stored
    passages on chunked indices, which needs --model).
    """
    state = settings(click.get_current_context(), options)
    es = client(state)
    contract = read_contract(es, index)
    model = encoder(state) if contract.nested else None
    found = find_duplicates(
        es, index, threshold=threshold, top_k=top_k, filters=parse_cli_filters(filters),
        limit=limit, encoder=model, checkpoint=checkpoint, progress=not quiet and not as_json,
    )  # fmt: skip
    pairs = best_of(found)
    if csv_path:
        _write_csv(csv_path, pairs)
    joined = group_pairs(pairs) if groups else None
    if as_json:
        payload: dict[str, Any] = {"index": index, "threshold": threshold,
                                   "pairs": [p.to_json() for p in pairs]}  # fmt: skip
        if joined is not None:
            payload["groups"] = [g.to_json() for g in joined]
        click.echo(json.dumps(payload, ensure_ascii=False))
        return
    width = shutil.get_terminal_size((120, 20)).columns
    if joined is not None:
        click.echo(f"{len(joined)} groups of near-duplicates ({len(pairs)} pairs, "
                   f">= {threshold}) in {index}")  # fmt: skip
        for group in joined:
            click.echo(f"\n{len(group.members)} documents, best {group.best_score:.4f}, "
                       f"representative {group.representative}")  # fmt: skip
            for member in group.members:
                mark = "*" if member == group.representative else " "
                text = group.snippets.get(member, "")
                click.echo(f" {mark} {member}  {text[: max(width - len(member) - 6, 20)]}")
        return
    click.echo(f"{len(pairs)} pairs at or above {threshold} in {index}")
    for pair in pairs:
        click.echo(f"{pair.score:.4f}  {pair.a}  ~  {pair.b}")
        for doc_id, text in ((pair.a, pair.passage_a or pair.snippet_a),
                             (pair.b, pair.passage_b or pair.snippet_b)):  # fmt: skip
            line = " ".join(str(text).split())
            click.echo(f"        {doc_id}: {line[: max(width - len(doc_id) - 12, 20)]}")


def _write_csv(path: str, pairs: list[DuplicatePair]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["a", "b", "score", "snippet_a", "snippet_b", "passage_a", "passage_b"])
        for p in pairs:
            writer.writerow([p.a, p.b, f"{p.score:.6f}", p.snippet_a, p.snippet_b,
                             p.passage_a or "", p.passage_b or ""])  # fmt: skip


@click.command("clusters")
@click.argument("index")
@click.option("--k", "k", type=click.IntRange(2, 10_000), required=True, help="clusters")
@click.option("--sample", type=click.IntRange(2), default=10_000, show_default=True,
              help="documents k-means is fitted on (all are then assigned)")  # fmt: skip
@click.option("--filter", "filters", multiple=True, help="only documents matching FIELD=VALUE")
@click.option("--write-field", help="store each document's cluster id in this integer field")
@sparse_model_option(
    "with --write-field on an index with a sparse leg: the leg's model, which makes its "
    "vectors again (default: found from the index's contract)"
)
@click.option("--terms", type=click.IntRange(1, 50), default=8, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="JSON output for scripts")
@click.option("--quiet", is_flag=True, help="no progress bar")
@connection_options
@handle_errors
def clusters_cmd(
    index: str,
    k: int,
    sample: int,
    filters: tuple[str, ...],
    write_field: str | None,
    sparse_model: str | None,
    terms: int,
    seed: int,
    as_json: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Group INDEX into --k topic clusters: sizes, central documents and label terms.

    k-means (scikit-learn, the 'cluster' extra) on a sample of the index's vectors, then every
    document assigned; labels are class-based TF-IDF terms of each cluster's texts.
    --write-field stores the cluster id so searches can filter or facet by it; a document
    changed or deleted meanwhile is left as it is and counted (conflicts). On passage indices
    --model must be the index's model (checked first: the passages are re-encoded); on an index
    with a sparse leg the write-back makes its vectors again with the leg's model.
    """
    state = settings(click.get_current_context(), options)
    es = client(state)
    model = encoder(state) if read_contract(es, index).nested else None
    report = cluster_index(
        es, index, k=k, sample=sample, filters=parse_cli_filters(filters), encoder=model,
        write_field=write_field, top_terms=terms, seed=seed, progress=not quiet and not as_json,
        sparse_encoder=load_sparse(state, sparse_model) if write_field else None,
    )  # fmt: skip
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
        return
    click.echo(f"{report.documents} documents of {index} in {k} clusters "
               f"(k-means on {report.sampled})")  # fmt: skip
    width = shutil.get_terminal_size((120, 20)).columns
    for topic in report.topics:
        click.echo(f"\n#{topic.id}  {topic.size} documents  {', '.join(topic.terms)}")
        for doc_id, similarity, snippet in topic.central:
            click.echo(f"    {similarity:.3f}  {doc_id}  {snippet[: max(width - 20, 20)]}")
    if write_field:
        _echo_write_back(report, write_field)
    if report.failed:
        raise click.exceptions.Exit(1)


def _echo_write_back(report: ClusterReport, write_field: str) -> None:
    """What the write-back did: written, left alone (changed or deleted since the scan: a
    version conflict, never overwritten) and failed, with the first ids and reasons."""
    click.echo(f"\n{report.written} documents now carry {write_field}")
    if report.conflicts:
        shown = ", ".join(report.conflict_ids[:10]) + (", ..." if report.conflicts > 10 else "")
        click.echo(f"{report.conflicts} changed or deleted since the scan were left as they "
                   f"are (run clusters again to label them): {shown}")  # fmt: skip
    if report.failed:
        click.echo(f"{report.failed} failed:")
        for doc_id, reason in report.failures[:10]:
            click.echo(f"    {doc_id}: {reason}")
