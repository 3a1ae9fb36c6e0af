"""Index on a Ray cluster (`ray[data]` extra): the driver checks the index contract, Ray Data
streams the rows through a pool of encoder actors, and the driver adds up their summaries.

    driver: encoder config (a task on a worker) -> create or check the index -> field spec
    Ray:    read (files: one task per file; or the user's dataset) -> map_batches(IndexBatches)
    driver: summary rows -> one IndexReport, one dead-letter file, one progress bar -> refresh

The pool is fitted to the cluster first: Ray Data starts the actors before any read task, so
actors holding every CPU leave the reads none and the run waits forever (ray-project/ray#44687).
A batch that meets a stopped cluster tells the others (a stop signal): later batches are
dead-lettered unsent, and the driver reads every summary before it raises.

Each actor builds its own client from the same :class:`ESConfig` (secrets travel inside it,
never in a message or log line) and runs the local ``Indexer`` on each batch, so contract
checks, the content-hash skip, chunking, bulk retries and dead letters are the local engine's.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from es_semantic.config import EncoderConfig, ESConfig
from es_semantic.distributed.rows import add_summary, summary_total
from es_semantic.elastic.calls import run
from es_semantic.elastic.client import make_client
from es_semantic.errors import (
    ConfigError,
    EncoderError,
    IndexingInterrupted,
    MissingDependencyError,
)
from es_semantic.indexing.batch import describe, open_run, stopped_error
from es_semantic.indexing.options import IndexOptions
from es_semantic.indexing.readers import FieldSpec, InputFormat, count_inputs, resolve_format
from es_semantic.indexing.setup import IndexSetup
from es_semantic.redact import client_secrets
from es_semantic.types import IndexReport

log = logging.getLogger(__name__)

GPU_CALLS_PER_ACTOR = 2
# CPUs kept free beside the pool for reading: each file read task of index_files asks for
# READ_CPUS (parsing is light next to encoding); a user's dataset's own tasks ask Ray's default.
READ_CPUS = 0.25
DATASET_TASK_CPUS = 1.0


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


def require_ray() -> Any:
    """The ``ray`` module, or the pip command that installs it."""
    try:
        import ray
        import ray.data
    except ImportError as exc:
        raise MissingDependencyError("ray[data]", "ray", "the Ray engine") from exc
    return ray


def connect(address: str | None = None, **init_options: Any) -> None:
    """Join the Ray cluster at ``address`` (``auto``: the one this machine belongs to; None:
    ``RAY_ADDRESS``, or a new local one, given :func:`machine_cpus`), unless this process has
    joined one already."""
    ray = require_ray()
    if not ray.is_initialized():
        if address is None and not os.environ.get("RAY_ADDRESS"):
            init_options.setdefault("num_cpus", machine_cpus())
        ray.init(address=address, **init_options)


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


def index_dataset(
    dataset: Any,
    es_config: ESConfig,
    index: str,
    model: str | None = None,
    *,
    encoder_options: Mapping[str, Any] | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    source: str = "dataset",
    total: int | None = None,
    options: IndexOptions | None = None,
) -> IndexReport:
    """Index a ``ray.data.Dataset`` whose rows have the id, text and metadata fields (named
    as for ``Indexer``: ``id_field``, ``text_fields``, ``metadata_fields``).

    ``model`` and ``encoder_options`` are what each actor passes to ``Encoder`` (a path or
    installed package every worker can load; None: the default model). ``options``: the
    ``Indexer``'s (``IndexOptions``). Dead letters name ``source`` and the row's id. Raises
    ``IndexingError`` (with ``.report``) when the cluster stopped the run."""
    return _Run(es_config, index, model, encoder_options, options or IndexOptions(),
                Resources(workers, cpus_per_worker, gpus_per_worker)).go(
        lambda spec: dataset, source, total, DATASET_TASK_CPUS)  # fmt: skip


def index_files(
    paths: Sequence[str],
    es_config: ESConfig,
    index: str,
    model: str | None = None,
    *,
    fmt: InputFormat | None = None,
    text_unit: str = "line",
    encoder_options: Mapping[str, Any] | None = None,
    workers: int = 1,
    cpus_per_worker: float = 1.0,
    gpus_per_worker: float = 0.0,
    options: IndexOptions | None = None,
) -> IndexReport:
    """Index files (JSONL, CSV, TSV, text, a BEIR folder, Parquet; local paths or any
    filesystem URL the Ray cluster can read), one read task per file, every record with its
    ``file:line`` origin. Options as :func:`index_dataset`."""
    if "-" in paths:
        raise ConfigError("the Ray engine reads files, not stdin: pass file paths")
    run = _Run(es_config, index, model, encoder_options, options or IndexOptions(),
               Resources(workers, cpus_per_worker, gpus_per_worker))  # fmt: skip
    return run.go(lambda spec: _read_files(paths, fmt, spec, text_unit), ", ".join(paths),
                  _count(paths, fmt, text_unit), READ_CPUS)  # fmt: skip


def _read_files(
    paths: Sequence[str], fmt: InputFormat | None, spec: FieldSpec, text_unit: str
) -> Any:
    """One dataset over every path (files of one format are read by one datasource)."""
    ray = require_ray()
    from es_semantic.distributed.datasource import RecordFiles

    groups: dict[tuple[InputFormat, FieldSpec], list[str]] = {}
    for path in paths:
        file, file_fmt, file_spec = resolve_format(path, fmt, spec)
        groups.setdefault((file_fmt, file_spec), []).append(file)
    # each read task asks for READ_CPUS (a named parameter in newer Ray, a remote arg before)
    read = ray.data.read_datasource
    cpus: dict[str, Any] = {"num_cpus": READ_CPUS}
    if "num_cpus" not in inspect.signature(read).parameters:
        cpus = {"ray_remote_args": cpus}
    datasets = [
        read(RecordFiles(files, file_fmt, file_spec, text_unit=text_unit), **cpus)
        for (file_fmt, file_spec), files in groups.items()
    ]
    return datasets[0].union(*datasets[1:]) if len(datasets) > 1 else datasets[0]


def _count(paths: Sequence[str], fmt: InputFormat | None, text_unit: str) -> int | None:
    try:
        return count_inputs(paths, fmt, text_unit)
    except Exception:  # a URL or an unknown format: the readers report it
        return None


class _Run:
    """One run on the cluster: the driver's side."""

    def __init__(
        self,
        es_config: ESConfig,
        index: str,
        model: str | None,
        encoder_options: Mapping[str, Any] | None,
        options: IndexOptions,
        resources: Resources,
    ) -> None:
        options.refuse_local_only()
        self.es_config, self.index, self.model = es_config, index, model
        self.encoder_options = dict(encoder_options or {})
        self.options, self.resources = options, resources
        self.ran: dict[str, str] | None = None  # the planned encoder, named in the report

    def go(self, dataset_for: Any, source: str, total: int | None, reading: float) -> IndexReport:
        """Run on the cluster; ``reading``: the CPUs the dataset's read tasks need."""
        ray = require_ray()
        connect()
        started = time.perf_counter()
        self.resources, clamped = self.resources.fit(ray.cluster_resources(), reading)
        if clamped:
            log.warning(clamped)
        config = self._encoder_config(ray)
        self.ran = config.ran()
        shown = self.options.progress
        context = ray.data.DataContext.get_current()
        context.enable_progress_bars = context.print_on_execution_start = shown
        logging.getLogger("ray.data").setLevel(logging.INFO if shown else logging.WARNING)
        with make_client(self.es_config) as es:
            setup = IndexSetup(self.index, config, self.options)
            run(es, setup.steps())  # creates the index, or checks its contract
            signal = ray.remote(num_cpus=0)(_stop_signal()).remote()  # no CPU from the pool
            try:
                out = self._map(dataset_for(setup.spec()), source, signal)
                report = self._collect(out, client_secrets(es), total)
            finally:
                ray.kill(signal)
            report.seconds = time.perf_counter() - started
            if self.options.refresh:
                es.indices.refresh(index=setup.target)
        return report

    def _map(self, dataset: Any, source: str, signal: Any) -> Any:
        ray = require_ray()
        return dataset.map_batches(
            _index_batches(),
            fn_constructor_kwargs={
                "es_config": self.es_config,
                "index": self.index,
                "model": self.model,
                "encoder_options": self.encoder_options,
                "options": self.options.for_batches(),
                "source": source,
                "concurrent": self.resources.calls_per_actor(),
                "signal": signal,
            },
            batch_size=self.options.batch_size,
            batch_format="pyarrow",
            compute=_actor_pool(ray, self.resources),
            **self.resources.remote_args(),
        )

    def _encoder_config(self, ray: Any) -> EncoderConfig:
        """Read from the model folder here, or by a worker when the driver has no such folder."""
        try:
            return _encoder_config(self.model, self.encoder_options)
        except EncoderError:
            remote = ray.remote(_encoder_config).options(**self.resources.remote_args())
            config: EncoderConfig = ray.get(remote.remote(self.model, self.encoder_options))
            return config

    def _collect(self, out: Any, secrets: list[str], total: int | None) -> IndexReport:
        """Add up every summary as it streams in (after a batch met a stopped cluster too:
        batches on other actors may still write); then raise when one did. Ctrl-C or SIGTERM
        stops the run with the report of what the summaries say (re-run to resume)."""
        run = open_run(self.index, self.options, secrets, total)
        run.report.encoder = self.ran
        stopped: str | None = None
        try:
            for row in out.iter_rows():
                for letter in add_summary(run.report, row):
                    run.fail(letter["source"], letter["reason"], letter["document"])
                run.bar.update(summary_total(row) - len(row["dead_letters"] or ()))
                stopped = stopped or row["stopped"]  # later batches come back unsent
        except KeyboardInterrupt as exc:
            interrupted = IndexingInterrupted(
                f"the Ray run into {self.index!r} was interrupted; {run.report.indexed} "
                "documents were indexed in the batches that came back (the report counts "
                "those only: what the batches still running wrote, a re-run skips); re-run "
                "the same command to resume"
            )
            interrupted.report = run.close()
            raise interrupted from exc
        except Exception as exc:  # Ray gave up (after its retries): what was counted stands
            reason = f"the Ray run failed: {describe(exc)}"
            raise stopped_error(self.index, reason, run.close(), secrets) from exc
        report = run.close()
        if stopped is not None:
            raise stopped_error(self.index, stopped, report, secrets)
        return report


def _actor_pool(ray: Any, resources: Resources) -> Any:
    """A fixed pool; GPU actors take two calls at once where Ray can (one encodes while the
    other's requests are on the wire)."""
    strategy = ray.data.ActorPoolStrategy
    calls = resources.calls_per_actor()
    if calls > 1 and "enable_true_multi_threading" in inspect.signature(strategy).parameters:
        return strategy(size=resources.workers, max_concurrent_calls_per_actor=calls,
                        enable_true_multi_threading=True)  # fmt: skip
    return strategy(size=resources.workers)


def _encoder_config(model: str | None, options: Mapping[str, Any]) -> EncoderConfig:
    """Read from the model folder without loading weights."""
    from es_semantic.encoding.encoder import describe_encoder

    return describe_encoder(model, **options)


def _index_batches() -> type:
    from es_semantic.distributed.worker import IndexBatches

    return IndexBatches


def _stop_signal() -> type:
    from es_semantic.distributed.worker import StopSignal

    return StopSignal
