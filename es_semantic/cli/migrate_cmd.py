"""migrate: move an alias to a new index built with another model, without downtime."""

from __future__ import annotations

import json
from typing import Any

import click

from es_semantic.cli.common import (
    client,
    connection_options,
    encoder,
    handle_errors,
    settings,
    terminate_as_interrupt,
)
from es_semantic.cli.indexing_cmds import chunk_options, chunking_options
from es_semantic.cli.sparse_options import load_sparse, sparse_model_option
from es_semantic.errors import ConfigError, EsSemanticError, InputError
from es_semantic.schema.contract import INDEX_OPTIONS, SIMILARITIES


@click.command("migrate")
@click.option("--from", "alias", required=True, help="the alias your application queries")
@click.option("--to", "new_index", help="name of the new index [ALIAS-MODEL-KEY, stable]")
@click.option("--similarity", type=click.Choice(SIMILARITIES), help="[the old index's]")
@click.option("--index-options", type=click.Choice(INDEX_OPTIONS), help="[the old index's]")
@chunk_options
@click.option("--queries", "queries_file", type=click.Path(dir_okay=False), help="eval gate")
@click.option("--qrels", "qrels_file", type=click.Path(dir_okay=False), help="eval gate")
@click.option(
    "--old-model", help="the old index's model folder, for the eval gate [from its contract]"
)
@click.option(
    "--gate-mode",
    type=click.Choice(["keyword", "knn", "hybrid", "weighted"]),
    default="knn",
    show_default=True,
)
@click.option("--gate-metric", default="ndcg@10", show_default=True)
@click.option(
    "--max-drop",
    type=click.FloatRange(0.0, 1.0),
    default=0.01,
    show_default=True,
    help="refuse the swap when the new index scores lower than the old by more than this",
)
@click.option("--drop-old", is_flag=True, help="delete the old index after the swap")
@click.option(
    "--no-freeze",
    is_flag=True,
    help="skip the write block + catch-up before the swap (only when nothing writes to the alias)",
)
@click.option("--batch-size", type=click.IntRange(1, 100_000), default=256, show_default=True)
@click.option("--dead-letter", type=click.Path(dir_okay=False), help="[NEW_INDEX.dead.jsonl]")
@sparse_model_option(
    "the sparse leg's model (needed when the index has one; another model's makes a new leg)"
)
@click.option("--json", "as_json", is_flag=True, help="machine-readable report")
@click.option("--quiet", is_flag=True, help="no progress bar")
@connection_options
@handle_errors
def migrate_cmd(
    alias: str,
    new_index: str | None,
    similarity: str | None,
    index_options: str | None,
    queries_file: str | None,
    qrels_file: str | None,
    old_model: str | None,
    gate_mode: str,
    gate_metric: str,
    max_drop: float,
    drop_old: bool,
    no_freeze: bool,
    batch_size: int,
    dead_letter: str | None,
    sparse_model: str | None,
    as_json: bool,
    quiet: bool,
    **options: Any,
) -> None:
    """Re-encode the documents behind alias --from with --model into a new index, then move
    the alias there in one atomic step.

    Queries keep working against the alias throughout. The new index gets the new model's
    contract and the old one's fields and layout (override with --similarity, --chunk, ...);
    it is filled from the old index's stored text (point in time + search_after). A re-run
    resumes: documents already copied are skipped without encoding (--to an existing index
    that this migration did not make is refused). Before the swap, writes to the old index are
    blocked while what changed meanwhile is copied (--no-freeze skips that); the old index
    stays read-only; Ctrl-C or SIGTERM before the swap lifts the block. With --queries/--qrels
    both indices are evaluated first and the swap is refused when the new one scores lower by
    more than --max-drop. The old index is kept until --drop-old (also on a later run).
    """
    from es_semantic.migration.migrator import migrate

    if bool(queries_file) != bool(qrels_file):
        raise InputError("the eval gate needs both --queries and --qrels")
    overrides = chunking_options(options)
    state = settings(click.get_current_context(), options)
    es = client(state)
    gate = _gate(es, alias, queries_file, qrels_file, old_model, gate_mode, gate_metric, max_drop)
    before = _alias_indices(es, alias)
    try:
        with terminate_as_interrupt():  # SIGTERM lifts the write block as Ctrl-C does
            report = migrate(
                es, alias, encoder(state), new_index=new_index, gate=gate, drop_old=drop_old,
                freeze=not no_freeze, batch_size=batch_size,
                dead_letter=dead_letter or "{index}.dead.jsonl",
                progress=not quiet and not as_json, similarity=similarity,
                index_options=index_options, sparse_encoder=load_sparse(state, sparse_model),
                **overrides,
            )  # fmt: skip
    except KeyboardInterrupt:
        click.echo(_where_the_alias_is(es, alias, before), err=True)
        raise  # "interrupted", exit 130
    if as_json:
        click.echo(json.dumps(report.to_json(), ensure_ascii=False))
        return
    for note in report.notes:
        click.echo(note)
    if report.copy is not None:
        c = report.copy
        click.echo(
            f"copied {c.indexed} documents ({c.skipped} already there, {c.encoded} encoded, "
            f"{c.truncated} truncated, {c.chunked} chunked) in {c.seconds:.1f}s"
        )
    if report.catch_up is not None:
        click.echo(
            f"catch-up with writes blocked: {report.catch_up.encoded} changed documents copied"
        )
    if report.gate is not None:
        click.echo(report.gate.describe())
    if report.swapped:
        click.echo(f"alias {alias}: {report.old_index} -> {report.new_index} (atomic swap)")
    if report.dropped:
        click.echo(f"deleted the old index {report.dropped}")
    elif report.swapped:
        click.echo(f"the old index {report.old_index} is kept; delete it with --drop-old")


def _alias_indices(es: Any, alias: str) -> list[str] | None:
    try:
        return sorted(es.indices.get_alias(name=alias).body)
    except Exception:  # the cluster may be what stopped it; migrate names a missing alias
        return None


def _where_the_alias_is(es: Any, alias: str, before: list[str] | None) -> str:
    """After an interrupt: where the alias points now and what to do next."""
    now = _alias_indices(es, alias)
    resume = "re-run the same command to resume (copied documents are skipped without encoding)"
    if now is None:
        return f"migrate stopped: check where alias {alias!r} points (GET _alias/{alias}); {resume}"
    if now == before:
        return (f"migrate stopped: alias {alias!r} still points at {', '.join(now)} (a write "
                f"block it set is lifted); {resume}")  # fmt: skip
    return (f"migrate stopped after the swap: alias {alias!r} points at {', '.join(now)}; "
            "re-run the same command to finish (--drop-old)")  # fmt: skip


def _gate(
    es: Any,
    alias: str,
    queries_file: str | None,
    qrels_file: str | None,
    old_model: str | None,
    mode: str,
    metric: str,
    max_drop: float,
) -> Any:
    if not (queries_file and qrels_file):
        return None
    from es_semantic.encoding.encoder import Encoder
    from es_semantic.evaluation.data import load_qrels, load_queries
    from es_semantic.evaluation.metrics import parse_metric
    from es_semantic.indexing.admin import read_contract
    from es_semantic.migration.migrator import EvalGate, resolve_alias

    try:
        parse_metric(metric)
    except ValueError as exc:
        raise InputError(f"--gate-metric: {exc}") from None
    old_index, _ = resolve_alias(es, alias)
    contract = read_contract(es, old_index)
    try:
        old_encoder = Encoder(old_model or contract.model_name)
    except (EsSemanticError, OSError) as exc:
        raise ConfigError(
            f"the eval gate needs the old model ({contract.model_name}, which built "
            f"{old_index}) and it cannot be loaded ({exc}): pass --old-model PATH"
        ) from None
    return EvalGate(
        load_queries(queries_file), load_qrels(qrels_file), old_encoder, mode, metric, max_drop
    )
