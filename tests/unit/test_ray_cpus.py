"""A local Ray started by es-semantic gets the CPUs this process may use, never more: Ray
counts every logical CPU of the host (cgroup quotas aside), so under ``taskset`` or a CPU
set it would offer workers cores the process cannot run on."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

ray = pytest.importorskip("ray", reason="the Ray engine needs the ray extra")

from es_semantic.distributed import engine  # noqa: E402


class FakeRay:
    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def is_initialized(self) -> bool:
        return False

    def init(self, **kwargs: Any) -> None:
        self.calls.append(kwargs)


@pytest.fixture
def fake_ray(monkeypatch: pytest.MonkeyPatch) -> FakeRay:
    fake = FakeRay()
    monkeypatch.setattr(engine, "require_ray", lambda: fake)
    return fake


def test_a_new_local_ray_gets_the_cpus_this_process_may_use(
    fake_ray: FakeRay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    engine.connect()
    assert fake_ray.calls == [{"address": None, "num_cpus": 1}]


def test_joining_a_cluster_or_a_given_count_is_left_alone(
    fake_ray: FakeRay, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0}, raising=False)
    engine.connect("auto")
    engine.connect(None, num_cpus=3)
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    engine.connect()
    assert fake_ray.calls == [{"address": "auto"}, {"address": None, "num_cpus": 3},
                              {"address": None}]  # fmt: skip


@pytest.mark.parametrize(
    ("files", "expected"),
    [({"cpu.max": "150000 100000\n"}, 1), ({"cpu.max": "max 100000\n"}, 4),
     ({"cpu/cpu.cfs_quota_us": "200000\n", "cpu/cpu.cfs_period_us": "100000\n"}, 2),
     ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, 4), ({}, 4)],
)  # fmt: skip
def test_a_cgroup_quota_caps_the_count(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, files: dict[str, str], expected: int
) -> None:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3}, raising=False)
    assert engine.machine_cpus(cgroup_root=tmp_path) == expected


class _Stopped:
    """Ray's output stream: one batch summary back, then a Ctrl-C that stops at once (the
    second, or one outside the main thread)."""

    def iter_rows(self) -> Any:
        from es_semantic.distributed.rows import summary_row
        from es_semantic.types import IndexReport

        yield summary_row(IndexReport("ix", indexed=4), [], None)
        raise KeyboardInterrupt


def test_a_hard_interrupt_says_the_batches_still_running_are_not_in_the_count() -> None:
    """Stopped at once, the driver counts the summaries that came back; batches still running
    on the actors may have written more. The line says so rather than imply that the report
    covers every record read (the first Ctrl-C drains: test_distributed_faults)."""
    from es_semantic.config import ESConfig
    from es_semantic.distributed.engine import Resources, _Run
    from es_semantic.errors import IndexingInterrupted
    from es_semantic.indexing.options import IndexOptions

    run = _Run(ESConfig(url="http://localhost:9200"), "ix", None, None,
               IndexOptions(progress=False), Resources())  # fmt: skip
    with pytest.raises(IndexingInterrupted) as stopped:
        run._collect(_Stopped(), [], 10, None)
    assert stopped.value.report.indexed == 4
    message = str(stopped.value)
    assert "4 documents" in message and "still running" in message and "re-run" in message


def test_a_signal_handler_installed_outside_python_is_left_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Ray's driver installs its own SIGTERM handler in C: Python can neither see nor put it
    back (``signal.signal`` returns None for it), so the drain must not take that signal over
    (it would restore SIG_DFL after the run, leaving Ray's handler lost)."""
    import signal

    from es_semantic.distributed.engine import _drain_on_interrupt

    real = signal.getsignal
    taken: list[int] = []
    monkeypatch.setattr(signal, "getsignal",
                        lambda sig: None if sig == signal.SIGTERM else real(sig))  # fmt: skip
    real_set = signal.signal

    def spy(sig: int, handler: Any) -> Any:
        taken.append(sig)
        return real_set(sig, handler)

    monkeypatch.setattr(signal, "signal", spy)
    with _drain_on_interrupt(None, "ix"):
        pass
    assert signal.SIGINT in taken and signal.SIGTERM not in taken
