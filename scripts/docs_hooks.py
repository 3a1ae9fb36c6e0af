"""MkDocs hooks: the reference pages generated from the code at build time, so they cannot drift.

A page holds a marker such as ``<!-- generated: cli -->``; ``on_page_markdown`` replaces it with
what the code says today (the click commands, the service's OpenAPI, the connection options,
the exception tree). ``on_files`` adds generated files: ``reference/openapi.json`` (from the
FastAPI app) and ``benchmarks/scifact-ndcg.png`` (the chart, drawn by matplotlib from
``docs/benchmarks/scifact.json``).

Run it alone to print one generated section: ``python scripts/docs_hooks.py cli``.
"""

from __future__ import annotations

import html
import inspect
import io
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
MARKER = re.compile(r"<!-- generated: ([a-z-]+) -->")
CODE_SPAN = re.compile(r"(`+[^`]*`+)")


def _cell(text: str) -> str:
    """Text safe inside a Markdown table cell."""
    return _inline(text).replace("|", "\\|")


def _inline(text: str) -> str:
    """Text as Markdown shows it: no emphasis, links or HTML made of its characters."""
    parts = CODE_SPAN.split(" ".join(text.split()))
    for i in range(0, len(parts), 2):  # the text between code spans
        parts[i] = html.escape(parts[i], quote=False)
        for char in "*_[]":
            parts[i] = parts[i].replace(char, "\\" + char)
    return "".join(parts)


def _paragraphs(text: str) -> str:
    """A click help text as Markdown: paragraphs kept, ``\\b`` blocks as preformatted text."""
    out: list[str] = []
    for block in inspect.cleandoc(text).split("\n\n"):
        if block.startswith("\b"):
            out.append("```text\n" + block.removeprefix("\b").strip("\n") + "\n```")
        else:
            out.append(_inline(block))
    return "\n\n".join(out)


def _options_table(command: Any, ctx: Any) -> str:
    rows = ["| option | what it does |", "|---|---|"]
    import click

    for param in command.get_params(ctx):
        if isinstance(param, click.Argument):  # named in the usage line
            continue
        record = param.get_help_record(ctx)
        if record is None:
            continue
        names, help_text = record
        rows.append(f"| `{names}` | {_cell(help_text)} |")
    return "\n".join(rows)


def cli_reference() -> str:
    """Every command of ``es-semantic`` (``cli.COMMANDS``): usage, help, options."""
    import click

    from es_semantic.cli import COMMANDS, cli

    root = click.Context(cli, info_name="es-semantic")
    parts = [
        "## es-semantic",
        f"```text\n{cli.get_usage(root)}\n```",
        _paragraphs(cli.help or ""),
        "Options accepted before the command name (and after it, on every command):",
        _options_table(cli, root),
    ]
    for name in sorted(COMMANDS):
        command = cli.get_command(root, name)
        assert command is not None, name
        ctx = click.Context(command, info_name=name, parent=root)
        parts += [
            f"## {name}",
            f"```text\n{command.get_usage(ctx)}\n```",
            _paragraphs(command.help or ""),
            _options_table(command, ctx),
        ]
    return "\n\n".join(parts)


def connection_options() -> str:
    """The connection and model options with their environment variables and TOML keys."""
    from es_semantic.cli.common import CONNECTION_OPTIONS
    from es_semantic.config import ENV_VARS, FILE_KEYS

    rows = ["| option | what it sets |", "|---|---|"]
    for names, kwargs in CONNECTION_OPTIONS:
        rows.append(f"| `{', '.join(names)}` | {_cell(kwargs.get('help', ''))} |")
    env = ["| ESConfig field | variable | key in the TOML file's `[elasticsearch]` table |",
           "|---|---|---|"]  # fmt: skip
    env += [f"| `{field}` | `{var}` | `{field}` |" for field, var in ENV_VARS.items()]
    env += [f"| `{key}` | – | `{key}` |" for key in FILE_KEYS if key not in ENV_VARS]
    return "\n".join(rows) + "\n\n" + "\n".join(env)


def error_tree() -> str:
    """The exception tree, as ``errors.py``'s docstring draws it."""
    import es_semantic.errors as errors

    doc = inspect.cleandoc(errors.__doc__ or "")
    tree = "\n".join(line for line in doc.splitlines() if line.startswith("    "))
    return f"```text\n{inspect.cleandoc(tree)}\n```"


class _NoModel:
    """Stands in for the encoder: the OpenAPI document does not depend on the model."""

    config = None


def openapi() -> dict[str, Any]:
    """The service's OpenAPI document, from the FastAPI app itself."""
    from es_semantic.service.app import create_app

    return create_app(_NoModel()).openapi()  # type: ignore[arg-type]


def _schema_name(content: dict[str, Any]) -> str:
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref") or next((s.get("$ref") for s in schema.get("anyOf", [])), None)
    return f"`{ref.rsplit('/', 1)[-1]}`" if ref else "JSON" if schema else "–"


def _schema_fields(schema: dict[str, Any]) -> str:
    rows = ["| field | type | default | description |", "|---|---|---|---|"]
    required = set(schema.get("required", ()))
    for name, prop in schema.get("properties", {}).items():
        kinds = [p.get("type") or p.get("$ref", "").rsplit("/", 1)[-1] for p in prop.get(
            "anyOf", [prop])]  # fmt: skip
        kind = " or ".join(k for k in kinds if k) or "any"
        default = "required" if name in required else json.dumps(prop.get("default"))
        rows.append(f"| `{name}` | {_cell(kind)} | {_cell(default)} | "
                    f"{_cell(prop.get('description', ''))} |")  # fmt: skip
    return "\n".join(rows)


def http_reference() -> str:
    """Every route of the service and every request model, from the OpenAPI document."""
    spec = openapi()
    parts: list[str] = []
    for path, methods in spec["paths"].items():
        for method, op in methods.items():
            parts.append(f"### `{method.upper()} {path}`")
            text = op.get("description") or op.get("summary") or ""
            if text:
                parts.append(_paragraphs(text))
            body = op.get("requestBody", {}).get("content")
            if body:
                parts.append(f"Body: {_schema_name(body)}.")
            codes = ", ".join(f"{code} ({_cell(r.get('description', ''))})"
                              for code, r in op.get("responses", {}).items())  # fmt: skip
            parts.append(f"Responses: {codes}.")
    parts.append("## Request and response models")
    for name, schema in spec.get("components", {}).get("schemas", {}).items():
        if name in ("HTTPValidationError", "ValidationError") or "properties" not in schema:
            continue
        parts += [f"### `{name}`", _paragraphs(schema.get("description", "")),
                  _schema_fields(schema)]  # fmt: skip
    return "\n\n".join(p for p in parts if p)


def eval_chart(data: dict[str, Any]) -> bytes:
    """A PNG bar chart: nDCG@10 per mode, one bar per index layout."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    layouts: dict[str, dict[str, float]] = data["ndcg@10"]
    modes = list(dict.fromkeys(m for scores in layouts.values() for m in scores))
    fig, ax = plt.subplots(figsize=(7, 3.6))
    width = 0.8 / len(layouts)
    for i, (layout, scores) in enumerate(layouts.items()):
        shown = [j for j, m in enumerate(modes) if m in scores]  # a layout may lack a mode
        xs = [j + i * width for j in shown]
        bars = ax.bar(xs, [scores[modes[j]] for j in shown], width, label=layout)
        ax.bar_label(bars, fmt="%.3f", fontsize=7)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(modes))], modes)
    ax.set_ylim(0.5, 0.85)
    ax.set_ylabel("nDCG@10")
    ax.set_title(data["title"], fontsize=10)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    out = io.BytesIO()
    fig.savefig(out, format="png", dpi=110, metadata={"Software": None})
    plt.close(fig)
    return out.getvalue()


def import_graph() -> str:
    """The packages' imports as a mermaid graph, grouped by the layers test_structure checks."""
    import ast
    import importlib.util

    table = ROOT / "tests/unit/test_structure.py"
    spec = importlib.util.spec_from_file_location("structure", table)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    layers: dict[str, int] = module.LAYERS
    package = ROOT / "es_semantic"
    edges: set[tuple[str, str]] = set()
    for path in package.rglob("*.py"):
        room = path.relative_to(package).parts[0].removesuffix(".py")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else []
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                parts = name.split(".")
                inner = parts[0] == "es_semantic" and len(parts) > 1 and parts[1] in layers
                if inner and parts[1] != room and not room.startswith("_"):
                    edges.add((room, parts[1]))
    lines = ["```mermaid", "flowchart TB"]
    for layer in sorted(set(layers.values()), reverse=True):
        rooms = sorted(r for r, n in layers.items() if n == layer and not r.startswith("_"))
        lines += [f'  subgraph L{layer}["layer {layer}"]', *(f"    {r}" for r in rooms), "  end"]
    lines += [f"  {a} --> {b}" for a, b in sorted(edges)]
    return "\n".join([*lines, "```"])


SECTIONS: dict[str, Callable[[], str]] = {
    "cli": cli_reference,
    "http": http_reference,
    "connection-options": connection_options,
    "errors": error_tree,
    "import-graph": import_graph,
}


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace each ``<!-- generated: NAME -->`` marker with that section."""

    def section(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in SECTIONS:
            raise ValueError(f"unknown generated section {name!r}: one of {', '.join(SECTIONS)}")
        return SECTIONS[name]()

    return MARKER.sub(section, markdown)


def on_files(files: Any, config: Any) -> Any:
    """Add the generated files: the OpenAPI document and the benchmark chart."""
    from mkdocs.structure.files import File

    spec = json.dumps(openapi(), indent=2, sort_keys=True) + "\n"
    files.append(File.generated(config, "reference/openapi.json", content=spec))
    data = json.loads((Path(config["docs_dir"]) / "benchmarks" / "scifact.json").read_text())
    chart = eval_chart(data)
    files.append(File.generated(config, "benchmarks/scifact-ndcg.png", content=chart))
    return files


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    if len(sys.argv) != 2 or sys.argv[1] not in SECTIONS:
        sys.exit(f"usage: python scripts/docs_hooks.py {'|'.join(SECTIONS)}")
    print(SECTIONS[sys.argv[1]]())
