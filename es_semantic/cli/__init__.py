"""The ``es-semantic`` command line: a thin click shell over the library."""

from __future__ import annotations

from typing import Any

import click

from es_semantic._version import __version__
from es_semantic.cli.common import connection_options, settings
from es_semantic.cli.eval_cmd import eval_cmd
from es_semantic.cli.indexing_cmds import create_index_cmd, delete_cmd, index_cmd, info_cmd
from es_semantic.cli.migrate_cmd import migrate_cmd
from es_semantic.cli.quickstart_cmd import quickstart_cmd
from es_semantic.cli.search_cmd import search_cmd


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="es-semantic")
@connection_options
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """Semantic and hybrid search for the Elasticsearch cluster you already run.

    Connection and model options go before or after the command name.
    Exit codes: 0 ok, 1 runtime failure, 2 usage error.
    """
    settings(ctx, options)


for command in (
    create_index_cmd,
    index_cmd,
    search_cmd,
    eval_cmd,
    info_cmd,
    delete_cmd,
    migrate_cmd,
    quickstart_cmd,
):
    cli.add_command(command)


def main() -> None:
    cli(prog_name="es-semantic")
