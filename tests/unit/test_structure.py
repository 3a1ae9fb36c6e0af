"""The rules ARCHITECTURE.md states, checked on the code: a module imports only from its own
layer or the layers below (imports inside functions count too), only encoding/ (and the
training extra) import torch, no module is over 400 lines and no function over 50 statements."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "es_semantic"
# ARCHITECTURE.md's table: a top-level module or package, and its layer
LAYERS = {
    "errors": 1, "types": 1, "redact": 1, "_version": 1,
    "config": 2, "cluster": 2,
    "schema": 3, "encoding": 3, "elastic": 3, "demo": 3,
    "indexing": 4, "search": 4,
    "corpus": 5, "evaluation": 5, "training": 5, "distributed": 5,
    "doctor": 5,
    "migration": 6, "service": 6, "mcp_server": 6, "integrations": 6,
    "cli": 7, "__init__": 7, "__main__": 7,
}  # fmt: skip
TORCH_ALLOWED = {"encoding", "training"}
MAX_LINES, MAX_STATEMENTS = 400, 50


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _room(path: Path, package: Path = PACKAGE) -> str:
    return path.relative_to(package).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, module) for every import in the file, wherever it stands."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
            if node.module == "es_semantic":  # from es_semantic import errors
                found += [(node.lineno, f"es_semantic.{a.name}") for a in node.names]
    return found


def layer_violations(paths: list[Path], package: Path = PACKAGE) -> list[str]:
    out = []
    for path in paths:
        room = _room(path, package)
        for line, module in _imports(path):
            parts = module.split(".")
            if parts[0] == "torch" and room not in TORCH_ALLOWED:
                out.append(f"{path.name}:{line} imports torch outside encoding/")
            if parts[0] != "es_semantic" or len(parts) < 2 or parts[1] not in LAYERS:
                continue
            if LAYERS[parts[1]] > LAYERS[room]:
                out.append(f"{path.relative_to(package)}:{line} ({room}, layer {LAYERS[room]}) "
                           f"imports {module} (layer {LAYERS[parts[1]]})")  # fmt: skip
    return out


def test_every_module_has_a_layer():
    assert {_room(p) for p in _modules()} <= set(LAYERS)


def test_no_import_runs_up_a_layer():
    assert layer_violations(_modules()) == []


def test_the_layer_check_sees_an_import_inside_a_function(tmp_path):
    package = tmp_path / "es_semantic"
    (package / "schema").mkdir(parents=True)
    probe = package / "schema" / "mapping.py"  # layer 3 reaching up to search (4) and torch
    probe.write_text("def f():\n    from es_semantic.search import core\n    import torch\n")
    found = layer_violations([probe], package)
    assert len(found) == 2 and "imports es_semantic.search (layer 4)" in found[0]
    assert "torch" in found[1]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_rooms_fit(path):
    tree = ast.parse(path.read_text(encoding="utf-8"))
    assert len(path.read_text(encoding="utf-8").splitlines()) <= MAX_LINES
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            statements = sum(isinstance(n, ast.stmt) for n in ast.walk(node)) - 1
            assert statements <= MAX_STATEMENTS, f"{node.name} has {statements} statements"
