"""The actor pool a Ray cluster can run (pure: no Ray), and the CPUs this machine gives a
local Ray."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from es_semantic.errors import ConfigError

GPU_CALLS_PER_ACTOR = 2


@dataclass(frozen=True)
class Resources:
    """The actor pool: ``workers`` actors, each with these CPUs and GPUs (fractions share)."""

    workers: int = 1
    cpus_per_worker: float = 1.0
    gpus_per_worker: float = 0.0

    def __post_init__(self) -> None:
        if self.workers < 1 or self.cpus_per_worker <= 0 or self.gpus_per_worker < 0:
            raise ConfigError(
                f"workers={self.workers}, cpus_per_worker={self.cpus_per_worker}, "
                f"gpus_per_worker={self.gpus_per_worker}: workers and CPUs must be > 0, GPUs >= 0"
            )

    def calls_per_actor(self) -> int:
        """Two on a GPU (encoding overlaps the other batch's requests); one on CPUs, where a
        second call's tokenising competes with the model for the same cores (measured:
        benchmarks/distributed.py on 2 cores was slower with two)."""
        return GPU_CALLS_PER_ACTOR if self.gpus_per_worker else 1

    def remote_args(self) -> dict[str, float]:
        args = {"num_cpus": self.cpus_per_worker}
        if self.gpus_per_worker:
            args["num_gpus"] = self.gpus_per_worker
        return args

    def fit(self, cluster: Mapping[str, float], reading: float) -> tuple[Resources, str | None]:
        """The pool a cluster with these total resources can run beside ``reading`` CPUs for
        the read tasks: as asked, or fewer workers with the line that says why; a one-line
        ``ConfigError`` naming the resources when not even one worker fits."""
        cpus, gpus = float(cluster.get("CPU", 0)), float(cluster.get("GPU", 0))
        by_cpu = math.floor((cpus - reading) / self.cpus_per_worker + 1e-9)
        by_gpu = self.workers
        if self.gpus_per_worker:
            by_gpu = math.floor(gpus / self.gpus_per_worker + 1e-9)
        fits = min(self.workers, by_cpu, by_gpu)
        has = f"the Ray cluster has {cpus:g} CPU and {gpus:g} GPU"
        if fits < 1:
            gpu = f" and {self.gpus_per_worker:g} GPU" if self.gpus_per_worker else ""
            raise ConfigError(
                f"{has}: one worker needs {self.cpus_per_worker:g} CPU{gpu}, and reading "
                f"{reading:g} CPU beside it; ask for less per worker (--cpus-per-worker, "
                "--gpus-per-worker) or join a bigger cluster (--ray-address)"
            )
        if fits == self.workers:
            return self, None
        asked = f"{self.workers} workers of {self.cpus_per_worker:g} CPU"
        running = f"running {fits} worker{'s' if fits > 1 else ''}"
        if by_gpu < self.workers:
            return replace(self, workers=fits), (
                f"{has}: {asked} and {self.gpus_per_worker:g} GPU do not fit; {running}"
            )
        room = math.floor((cpus - reading) / self.workers * 1000) / 1000
        return replace(self, workers=fits), (
            f"{has}: {asked} would leave less than the {reading:g} CPU reading needs, and the "
            f"run would wait forever; {running} (--cpus-per-worker {room:g} or less runs all "
            f"{self.workers})"
        )  # fmt: skip


def machine_cpus(cgroup_root: Path = Path("/sys/fs/cgroup")) -> int:
    """The CPUs this process may run on: its CPU affinity (``taskset``, a cpuset), capped by
    a cgroup quota (v2 ``cpu.max``, v1 ``cpu.cfs_quota_us``). Ray alone counts the host's
    logical CPUs, which under an affinity mask are more than the process has."""
    getaffinity = getattr(os, "sched_getaffinity", None)
    cpus = len(getaffinity(0)) if getaffinity else (os.cpu_count() or 1)
    for quota_file, period_file in (("cpu.max", None),
                                    ("cpu/cpu.cfs_quota_us", "cpu/cpu.cfs_period_us")):  # fmt: skip
        try:
            words = (cgroup_root / quota_file).read_text().split()
            if period_file is not None:
                words.append((cgroup_root / period_file).read_text().strip())
            quota, period = float(words[0]), float(words[1])
        except (OSError, ValueError, IndexError):  # "max", no such file, no cgroup
            continue
        if quota > 0 and period > 0:
            cpus = min(cpus, max(1, math.floor(quota / period)))
        break
    return max(1, cpus)
