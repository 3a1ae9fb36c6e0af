"""The documentation site's generated reference covers the code (scripts/docs_hooks.py), and
every page the navigation names exists. ``mkdocs build --strict`` in scripts/test.sh checks
the links; these check what a build cannot see: a command, option or route left out."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path
from types import ModuleType

import click
import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def hooks() -> ModuleType:
    spec = importlib.util.spec_from_file_location("docs_hooks", ROOT / "scripts" / "docs_hooks.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cli_reference_has_every_command_and_option(hooks):
    from es_semantic.cli import COMMANDS, cli

    text = hooks.cli_reference()
    root = click.Context(cli, info_name="es-semantic")
    for name in COMMANDS:
        assert f"\n## {name}\n" in text, name
        command = cli.get_command(root, name)
        section = text.split(f"\n## {name}\n", 1)[1].split("\n## ", 1)[0]
        for param in command.params:
            if isinstance(param, click.Option) and not param.hidden:
                assert f"`{param.opts[0]}" in section, f"{name} {param.opts[0]}"


def test_http_reference_has_every_route(hooks):
    spec = hooks.openapi()
    text = hooks.http_reference()
    routes = [(m.upper(), p) for p, methods in spec["paths"].items() for m in methods]
    assert ("POST", "/indices/{index}/search") in routes
    for method, path in routes:
        assert f"### `{method} {path}`" in text
    assert "### `SearchBody`" in text


def test_configuration_reference_has_every_variable(hooks):
    from es_semantic.config import ENV_VARS

    text = hooks.connection_options()
    for variable in ENV_VARS.values():
        assert f"`{variable}`" in text


def test_markers_are_replaced_and_unknown_ones_refused(hooks):
    page = "# Errors\n\n<!-- generated: errors -->\n"
    assert "MigrationRefused" in hooks.on_page_markdown(page)
    with pytest.raises(ValueError, match="unknown generated section 'nope'"):
        hooks.on_page_markdown("<!-- generated: nope -->")


def test_escaping_keeps_code_spans(hooks):
    assert hooks._cell("a_b [x] `c_d|e` f|g") == "a\\_b \\[x\\] `c_d\\|e` f\\|g"


def test_every_page_in_the_navigation_exists():
    nav = (ROOT / "mkdocs.yml").read_text().split("\nnav:\n", 1)[1]
    pages = re.findall(r":\s+(\S+\.md)\s*$", nav, flags=re.M)
    assert len(pages) > 20
    missing = [p for p in pages if not (ROOT / "docs" / p).is_file()]
    assert not missing
