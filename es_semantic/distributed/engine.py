"""Index on a Ray cluster (`ray[data]` extra): the driver checks the index contract, Ray Data
streams the rows through a pool of encoder actors, and the driver adds up their summaries.

    driver: encoder config (a task on a worker) -> create or check the index -> field spec
    Ray:    read (files: one task per file; or the user's dataset) -> map_batches(IndexBatches)
    driver: summary rows -> one IndexReport, one dead-letter file, one progress bar -> refresh

The pool is fitted to the cluster first: Ray Data starts the actors before any read task, so
actors holding every CPU leave the reads none and the run waits forever (ray-project/ray#44687).
A batch that meets a stopped cluster tells the others (the run's shared state): later batches
are dead-lettered unsent, file reads stop, and the driver reads every summary before it
raises. Ctrl-C (or SIGTERM) does the same: the batches on the workers finish, what was read
after is dead-lettered unsent, and the report accounts for every record read; a second
Ctrl-C stops at once (the batches in flight are then not in the report). A user's dataset is
read by its own tasks, which only leaving the stream stops: after a stop its batches are left
unread, and the driver leaves once it has counted every batch begun before.

Each actor builds its own client from the same :class:`ESConfig` (secrets travel inside it,
never in a message or log line) and runs the local ``Indexer`` on each batch, so contract
checks, the content-hash skip, chunking, bulk retries and dead letters are the local engine's.
"""

from __future__ import annotations

import contextlib
import inspect
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from es_semantic.config import EncoderConfig, ESConfig
from es_semantic.distributed.resources import Resources, machine_cpus
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

# CPUs kept free beside the pool for reading: each file read task of index_files asks for
# READ_CPUS (parsing is light next to encoding); a user's dataset's own tasks ask Ray's default.
READ_CPUS = 0.25
DATASET_TASK_CPUS = 1.0


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
        lambda spec, state: dataset, source, total, DATASET_TASK_CPUS,
        leave_unread=True)  # fmt: skip


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
    return run.go(lambda spec, state: _read_files(paths, fmt, spec, text_unit, state),
                  ", ".join(paths),
                  _count(paths, fmt, text_unit), READ_CPUS)  # fmt: skip


def _read_files(
    paths: Sequence[str], fmt: InputFormat | None, spec: FieldSpec, text_unit: str, state: Any
) -> Any:
    """One dataset over every path (files of one format are read by one datasource, which
    stops reading when the run stops)."""
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
        read(RecordFiles(files, file_fmt, file_spec, text_unit=text_unit, state=state), **cpus)
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

    def go(self, dataset_for: Any, source: str, total: int | None, reading: float, *,
           leave_unread: bool = False) -> IndexReport:  # fmt: skip
        """Run on the cluster; ``reading``: the CPUs the dataset's read tasks need;
        ``leave_unread``: the dataset's reads go on after a stop (a user's dataset), so what
        reaches a worker after it is left unread and the run ends once the rest is counted."""
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
            state = ray.remote(num_cpus=0)(_run_state()).remote(leave_unread)  # no pool CPU
            try:
                out = self._map(dataset_for(setup.spec(), state), source, state)
                report = self._collect(out, client_secrets(es), total, state)
            finally:
                ray.kill(state)
            report.seconds = time.perf_counter() - started
            if self.options.refresh:
                es.indices.refresh(index=setup.target)
        return report

    def _map(self, dataset: Any, source: str, state: Any) -> Any:
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
                "signal": state,
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

    def _collect(self, out: Any, secrets: list[str], total: int | None, state: Any) -> (
            IndexReport):  # fmt: skip
        """Add up every summary as it streams in (after a batch met a stopped cluster too:
        batches on other actors may still write); then raise when one did. The first Ctrl-C
        or SIGTERM drains the run (see the module's docstring); a second stops at once."""
        run = open_run(self.index, self.options, secrets, total)
        run.report.encoder = self.ran
        stopped: str | None = None
        consumed = 0  # records counted; a user's dataset is read no further once they are all
        with _drain_on_interrupt(state, self.index) as interrupted:
            try:
                for row in out.iter_rows():
                    for letter in add_summary(run.report, row):
                        run.fail(letter["source"], letter["reason"], letter["document"])
                    consumed += summary_total(row)
                    run.bar.update(summary_total(row) - len(row["dead_letters"] or ()))
                    stopped = stopped or row["stopped"]  # later batches come back unsent
                    if (stopped or interrupted.is_set()) and require_ray().get(
                            state.drained.remote(consumed)):  # fmt: skip
                        break  # leaving the loop ends the dataset's reads
            except KeyboardInterrupt as exc:
                raise self._interrupted(run.close(), drained=False) from exc
            except Exception as exc:  # Ray gave up (after its retries): what was counted stands
                reason = f"the Ray run failed: {describe(exc)}"
                raise stopped_error(self.index, reason, run.close(), secrets) from exc
        report = run.close()
        if stopped is not None:
            raise stopped_error(self.index, stopped, report, secrets)
        if interrupted.is_set():
            raise self._interrupted(report, drained=True)
        return report

    def _interrupted(self, report: IndexReport, drained: bool) -> IndexingInterrupted:
        counted = (
            "the batches in flight finished and what was read after is dead-lettered unsent "
            "(a dataset is read no further)" if drained else "the report counts the batches "
            "that came back only: what the batches still running wrote, a re-run skips"
        )  # fmt: skip
        interrupted = IndexingInterrupted(
            f"the Ray run into {self.index!r} was interrupted; {report.indexed} documents were "
            f"indexed ({counted}); re-run the same command to resume"
        )
        interrupted.report = report
        return interrupted


@contextlib.contextmanager
def _drain_on_interrupt(state: Any, index: str) -> Iterator[threading.Event]:
    """While inside (in the main thread, where signals arrive), the first SIGINT or SIGTERM
    tells the run's state to stop sending and reading (from a thread: no Ray call in a signal
    handler) and sets the event; the next raises ``KeyboardInterrupt``."""
    interrupted, leaving = threading.Event(), threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield interrupted
        return

    def on_signal(signum: int, frame: object) -> None:
        if interrupted.is_set():
            raise KeyboardInterrupt(f"signal {signum}")
        interrupted.set()

    def tell() -> None:
        while not interrupted.wait(0.2):
            if leaving.is_set():
                return
        try:
            require_ray().get(state.interrupt.remote())
        except Exception as exc:  # the run ended (its state gone) as the signal came
            log.debug("the interrupt reached no run state: %s", describe(exc))
            return
        said = f"interrupted: finishing the batches in flight into {index!r} (every record read"
        print(f"{said} is counted); Ctrl-C again stops at once", file=sys.stderr, flush=True)

    # a handler installed outside Python (Ray's driver puts one on SIGTERM) cannot be put
    # back by ``signal.signal``: such a signal is left to it
    ours = [sig for sig in (signal.SIGINT, signal.SIGTERM) if signal.getsignal(sig) is not None]
    previous = {sig: signal.signal(sig, on_signal) for sig in ours}
    teller = threading.Thread(target=tell, name="es-semantic-ray-interrupt", daemon=True)
    teller.start()
    try:
        yield interrupted
    finally:
        leaving.set()
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
        teller.join(timeout=5)


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


def _run_state() -> type:
    from es_semantic.distributed.worker import RunState

    return RunState
