"""The ``es-semantic`` command line: a thin click shell over the library.

Commands load on first use (a lazy group), so ``es-semantic --help`` imports neither torch nor
the Elasticsearch client; a test keeps the short help below equal to each command's own.
"""

from __future__ import annotations

import importlib
from typing import Any

import click

from es_semantic._version import __version__
from es_semantic.cli.common import connection_options, settings

# name -> (module, attribute, the first paragraph of its docstring, as --help lists it)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "create-index": ("indexing_cmds", "create_index_cmd",
                     "Create INDEX for the model's contract (never deletes, unless --recreate)."),
    "index": ("index_cmd", "index_cmd",
              "Encode and index PATH... (files, a BEIR folder, or - for stdin) into INDEX."),
    "serve": ("serve_cmd", "serve_cmd",
              "Serve embeddings (OpenAI and text-embeddings-inference shapes), rerank and "
              "search."),
    "search": ("search_cmd", "search_cmd",
               "Search INDEX for QUERY (keyword, kNN or hybrid; optional cross-encoder rerank)."),
    "eval": ("eval_cmd", "eval_cmd",
             "Evaluate retrieval modes of INDEX on queries + qrels (or a BEIR folder) side by "
             "side."),
    "info": ("indexing_cmds", "info_cmd",
             "Show INDEX's contract (model, pooling, dims, ...), document count and mapping."),
    "delete": ("indexing_cmds", "delete_cmd",
               "Delete documents from INDEX by id or by metadata filter (--dry-run lists them "
               "first)."),
    "migrate": ("migrate_cmd", "migrate_cmd",
                "Re-encode the documents behind alias --from with --model into a new index, then "
                "move the alias there in one atomic step."),
    "clusters": ("corpus_cmds", "clusters_cmd",
                 "Group INDEX into --k topic clusters: sizes, central documents and label terms."),
    "duplicates": ("corpus_cmds", "duplicates_cmd",
                   "Find near-duplicate documents in INDEX: pairs at or above --threshold, "
                   "highest first."),
    "finetune": ("train_cmds", "finetune_cmd",
                 "Fine-tune a bi-encoder on your pairs; the best epoch on the dev rows is saved "
                 "to --out."),
    "finetune-reranker": ("train_cmds", "finetune_reranker_cmd",
                          "Train a cross-encoder reranker on (query, passage, label) or (query, "
                          "positive) rows."),
    "doctor": ("doctor_cmd", "doctor_cmd",
               "Check the cluster, the model, the installed extras and an index; say what to "
               "fix."),
    "mcp": ("mcp_cmd", "mcp_cmd",
            "Serve search tools to agents over the Model Context Protocol (stdio or HTTP)."),
    "quickstart": ("quickstart_cmd", "quickstart_cmd",
                   "Start a server (unless ES_URL is set), index Python's docstrings, compare "
                   "search modes."),
}  # fmt: skip


class LazyGroup(click.Group):
    """A group whose commands are imported when run (or asked for their own --help)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        entry = COMMANDS.get(cmd_name)
        if entry is None:
            return None
        module = importlib.import_module(f"es_semantic.cli.{entry[0]}")
        command: click.Command = getattr(module, entry[1])
        return command

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        limit = formatter.width - 6 - max(len(name) for name in COMMANDS)
        rows = [
            (name, click.Command(name, help=COMMANDS[name][2]).get_short_help_str(limit))
            for name in self.list_commands(ctx)
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, prog_name="es-semantic")
@connection_options
@click.pass_context
def cli(ctx: click.Context, /, **options: Any) -> None:
    """Semantic and hybrid search for the Elasticsearch cluster you already run.

    Connection and model options go before or after the command name.
    Exit codes: 0 ok, 1 runtime failure, 2 usage error.
    """
    settings(ctx, options)


def main() -> None:
    cli(prog_name="es-semantic")
