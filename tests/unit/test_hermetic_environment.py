"""No test sees the shell's ES_SEMANTIC_* or connection variables (tests/conftest.py)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.hermetic import package_variables

ROOT = Path(__file__).resolve().parents[2]
HOSTILE = {"ES_SEMANTIC_MODEL": "/nonexistent/model", "ES_SEMANTIC_CONFIG": "/nonexistent.toml",
           "ES_API_KEY": "not-a-key", "ES_SEMANTIC_ANYTHING_NEW": "x"}  # fmt: skip


@pytest.fixture(scope="module")
def seen_by_a_module_fixture() -> list[str]:
    """Module fixtures run before function-scoped autouse fixtures: they must see none too."""
    return package_variables(os.environ)


def test_no_package_variable_reaches_a_test(seen_by_a_module_fixture: list[str]) -> None:
    assert seen_by_a_module_fixture == []
    assert package_variables(os.environ) == []


def test_a_test_sets_what_it_needs_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ES_SEMANTIC_MODEL", "/chosen/by/the/test")
    assert package_variables(os.environ) == ["ES_SEMANTIC_MODEL"]


def _inner_run(*options: str) -> subprocess.CompletedProcess[str]:
    test = f"{Path(__file__).relative_to(ROOT)}::test_no_package_variable_reaches_a_test"
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *options, test],
        cwd=ROOT, env={**os.environ, **HOSTILE}, capture_output=True, text=True, timeout=300,
    )  # fmt: skip


def test_the_shell_variables_are_cleared_and_the_check_can_fail() -> None:
    """A pytest run with hostile variables in its environment passes; the same test without
    the conftest fixtures (``--noconftest``) fails, naming them."""
    hermetic = _inner_run()
    assert hermetic.returncode == 0, hermetic.stdout[-2000:]
    bare = _inner_run("--noconftest")
    assert bare.returncode == 1, bare.stdout[-2000:]
    assert "ES_SEMANTIC_MODEL" in bare.stdout and "ES_API_KEY" in bare.stdout
