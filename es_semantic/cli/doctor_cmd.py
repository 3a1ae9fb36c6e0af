"""doctor: what will work on this cluster with this model, one screen (or --json)."""

from __future__ import annotations

import json
from typing import Any

import click

from es_semantic.cli.common import connection_options, handle_errors, model_options, settings


@click.command("doctor")
@click.option("--index", help="also check INDEX: its contract, layout, count, and this model")
@click.option("--json", "as_json", is_flag=True, help="machine-readable output")
@connection_options
@handle_errors
def doctor_cmd(index: str | None, as_json: bool, **options: Any) -> None:
    """Check the cluster, the model, the installed extras and an index; say what to fix.

    Each line is ok, warn or fail; every line that is not ok says what to do. Exit code 0
    when nothing failed, 1 when something did.
    """
    from es_semantic.doctor import diagnose, exit_code, render_json, render_text
    from es_semantic.doctor.gather import gather

    state = settings(click.get_current_context(), options)
    facts = gather(state.es_config(), state.model(), model_options(state), index)
    findings = diagnose(facts)
    if as_json:
        click.echo(json.dumps(render_json(findings), indent=2, ensure_ascii=False))
    else:
        click.echo(render_text(findings))
    click.get_current_context().exit(exit_code(findings))
