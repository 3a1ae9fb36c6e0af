"""One way to load a model, for Encoder and CrossEncoder: folder -> tokenizer, window, runtime.

``torch`` runs the transformer under its head (int8 feed-forward on request); ``onnx`` and
``openvino`` run an export of the same head, built once and cached, a quantised build measured
against fp32 on held-out texts and refused below ``min_cosine`` unless forced. ``auto`` backend
and precision are resolved by ``backend.plan_run`` on this machine's facts; a bf16 choice is
held to the gate of ``precision_gate`` (measured once, cached beside the exports).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from es_semantic.encoding.backend import (
    BF16_FLAGS,
    BF16_GATE,
    DEFAULT_MIN_COSINE,
    Accuracy,
    BackendChoice,
    Precision,
    RunPlan,
    check_accuracy,
    measure_accuracy,
    plan_run,
    split_calibration,
    texts_digest,
)
from es_semantic.encoding.device import (
    autocast_dtype,
    check_precision,
    machine,
    pick_device,
    weights_dtype,
)
from es_semantic.encoding.export import (
    ExportSlot,
    Feeds,
    build,
    cache_root,
    calibration_feeds,
    export_slot,
    require_backend,
    write_accuracy,
)
from es_semantic.encoding.heads import HeadSpec, uses_token_types
from es_semantic.encoding.model_folder import load_model_config, model_fingerprint, position_limit
from es_semantic.encoding.precision_gate import (
    Verdict,
    gate_file,
    judge,
    read_verdict,
    run_sample,
    sample_batches,
    write_verdict,
)
from es_semantic.encoding.quantize import quantize_model
from es_semantic.encoding.runtimes import Runtime, TorchRuntime, load_runtime
from es_semantic.encoding.tokens import load_tokenizer, padded_feeds, tokenize
from es_semantic.errors import ConfigError, EncoderError

EXAMPLE_TEXTS = ["an example text to trace", "a second, longer one."]
EXAMPLE_PAIRS = ["a passage to score", "a second passage, a longer one to score."]


@dataclass(frozen=True)
class Calibration:
    """A quantised export's sample texts (needed the first time) and its accuracy gate."""

    texts: Sequence[str] | None = None
    min_cosine: float = DEFAULT_MIN_COSINE
    force: bool = False


@dataclass(frozen=True)
class LoadedModel:
    """A model ready to run: ``runtime.run(feeds)`` gives the head's float32 output."""

    path: Path
    config: Any  # the transformers config
    fingerprint: str
    tokenizer: Any
    max_length: int  # the window asked for, within the model's positions
    device: torch.device
    dtype: torch.dtype  # the torch weights' (float32 under bf16 autocast on a CPU)
    runtime: Runtime
    model: Any = None  # the torch model (torch backend only)
    accuracy: Accuracy | None = None  # a quantised export's, measured when it was built
    precision: str = "float32"  # the precision that runs, as the runtime reports it
    choice: BackendChoice = field(
        default_factory=BackendChoice
    )  # the backend that runs (``auto`` resolved)


@dataclass(frozen=True)
class _Export:
    """What building an export needs besides the slot."""

    path: Path
    head: HeadSpec
    name: str
    fingerprint: str
    tokenizer: Any
    max_length: int
    report: Callable[[str], None]

    def feeds(self, texts: Sequence[str], pairs: Sequence[str] | None = None) -> Feeds:
        """All ``texts`` (with ``pairs``) tokenised and padded, as the export takes them."""
        tokens = tokenize(self.tokenizer, texts, self.max_length, pairs=pairs)
        types = uses_token_types(self.tokenizer)
        return padded_feeds(tokens, list(range(len(texts))), self.tokenizer, token_types=types)


def load_model(
    path: Path,
    head: HeadSpec,
    choice: BackendChoice | str = "auto",
    *,
    max_length: int,
    device: str | None = None,
    precision: str | None = None,
    dtype: str | None = None,
    quantize: str = "none",
    cache_dir: str | os.PathLike[str] | None = None,
    calibration: Calibration | None = None,
    name: str | None = None,
    report: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load ``path`` (a resolved model folder) for ``head``.

    ``choice``: a :class:`BackendChoice`, or a backend name (``auto`` included) with
    ``quantize``. ``precision`` (``dtype`` is its older name; ``None`` is ``auto``): see
    :func:`~es_semantic.encoding.backend.plan_run`. Exported backends run on the CPU unless
    ``device`` says otherwise; ``report`` hears of an export being built or a gate measured."""
    plan, torch_device = resolve_plan(choice, precision or dtype, quantize, device)
    config = load_model_config(path)
    tokenizer = load_tokenizer(path)
    window = min(max_length, position_limit(config))
    fingerprint = model_fingerprint(path)
    job = _Export(path, head, name or path.name, fingerprint, tokenizer, window,
                  report or _silent)  # fmt: skip
    setup = _Setup(job, torch_device, cache_root(cache_dir), calibration or Calibration())
    plan, ran = _gated(plan, setup, choice) if plan.gated else (plan, _load(plan, setup))
    return LoadedModel(path, config, fingerprint, tokenizer, window, torch_device,
                       weights_dtype(plan.precision, torch_device), ran.runtime, ran.model,
                       ran.accuracy, ran.runtime.precision, plan.choice)  # fmt: skip


def resolve_plan(
    choice: BackendChoice | str,
    precision: str | None,
    quantize: str,
    device: str | None,
    *,
    check_device: bool = True,
) -> tuple[RunPlan, torch.device]:
    """The backend and precision that ``auto`` (or the names given) come to on this machine,
    and the torch device: exported backends run on the CPU unless ``device`` is named.
    ``check_device=False`` takes a named device as it is (a Ray driver planning for GPU
    workers need not have one).

    A caller that hands a :class:`BackendChoice` and no precision keeps the earlier default
    (float16 on CUDA, float32 elsewhere, no gate): ``precision="auto"`` opts in."""
    legacy = isinstance(choice, BackendChoice) and precision is None
    backend, quantize = (
        (choice.backend, choice.quantize)
        if isinstance(choice, BackendChoice)
        else (choice, quantize)
    )
    precision = check_precision(precision)
    exported = backend not in ("auto", "torch")
    named = device if device is not None or not exported else "cpu"
    if check_device or named in (None, "auto"):
        torch_device = pick_device(named)
    else:
        torch_device = _as_device(named)
    if legacy:
        precision = "float16" if torch_device.type == "cuda" and not exported else "float32"
    plan = plan_run(backend, precision, quantize, machine(torch_device.type))
    if plan.choice.quantize == "int8" and torch_device.type != "cpu":
        raise ConfigError("quantize='int8' is a CPU path; on a GPU use precision='float16'")
    if plan.choice.exported and device is None:
        torch_device = torch.device("cpu")
    return plan, torch_device


def predict_plan(
    path: Path,
    head: HeadSpec,
    backend: str,
    quantize: str,
    *,
    precision: str | None,
    device: str | None,
    cache_dir: str | os.PathLike[str] | None,
) -> RunPlan:
    """What :func:`load_model` would run, without loading it: a bf16 choice is taken from the
    gate's cached verdict where there is one (and kept, as planned, where there is none)."""
    plan, _ = resolve_plan(backend, precision, quantize, device, check_device=False)
    if not plan.gated:
        return plan
    where = gate_file(cache_root(cache_dir), model_fingerprint(path), head.key,
                      plan.choice.backend, machine("cpu").cpu)  # fmt: skip
    verdict = read_verdict(where)
    if verdict is None or verdict.precision == "bfloat16":
        return plan
    return plan_run(backend, "float32", plan.choice.quantize, machine("cpu"))


def _as_device(name: str | None) -> torch.device:
    try:
        return torch.device(name or "cpu")
    except RuntimeError:
        raise ConfigError(
            f"device={name!r} is not a torch device (cpu, cuda, cuda:1, mps)"
        ) from None


@dataclass(frozen=True)
class _Setup:
    """Where and how a plan is loaded."""

    job: _Export
    device: torch.device
    root: Path
    calibration: Calibration


@dataclass(frozen=True)
class _Loaded:
    runtime: Runtime
    model: Any = None
    accuracy: Accuracy | None = None


def _load(plan: RunPlan, setup: _Setup) -> _Loaded:
    """The runtime of ``plan``: an export (built the first time), or the torch model."""
    job, device = setup.job, setup.device
    if plan.choice.exported:
        runtime, accuracy = _exported_runtime(job, plan, setup.root, setup.calibration,
                                              str(device))  # fmt: skip
        if runtime.precision != plan.precision:
            job.report(f"{plan.choice.backend} runs {job.name} in {runtime.precision}: "
                       f"{plan.precision} is not available to it on this device")  # fmt: skip
        return _Loaded(runtime, None, accuracy)
    model = load_transformer(job.path, job.head, device, weights_dtype(plan.precision, device))
    model = quantize_model(model, "int8" if plan.choice.quantized else "none", device)
    runtime = TorchRuntime(job.head.wrap(model), device, plan.precision,
                           autocast_dtype(plan.precision, device))  # fmt: skip
    return _Loaded(runtime, model)


def _gated(plan: RunPlan, setup: _Setup, asked: BackendChoice | str) -> tuple[RunPlan, _Loaded]:
    """``auto`` chose bf16: keep it where it holds the gate against float32 on the fixed
    sample (measured once per model, head, backend and CPU kind), else float32."""
    job = setup.job
    cpu = machine("cpu").cpu
    path = gate_file(setup.root, job.fingerprint, job.head.key, plan.choice.backend, cpu)
    verdict = read_verdict(path)
    if verdict is None:
        candidate = _load(plan, setup)
        if candidate.runtime.precision != "bfloat16":  # the runtime did not take bf16
            ran = cast(Precision, candidate.runtime.precision)
            return replace(plan, precision=ran, gated=False), candidate
        verdict = _measure(plan, setup, candidate)
        write_verdict(path, verdict, model=job.name, fingerprint=job.fingerprint,
                      head=job.head.key, backend=plan.choice.backend, cpu=cpu.model,
                      bf16_flags=sorted(set(BF16_FLAGS) & cpu.flags))  # fmt: skip
        job.report(
            f"precision auto: {plan.choice.backend} bfloat16 against float32 on a fixed sample: "
            f"{verdict.describe()} (gate: {BF16_GATE.describe()}), so {job.name} runs "
            f"{verdict.precision} on this CPU; decided once, kept in {path}"
        )
        if verdict.precision == "bfloat16":
            return plan, candidate
    if verdict.precision == "bfloat16":
        return plan, _load(plan, setup)
    backend = asked if isinstance(asked, str) else asked.backend
    fallback = plan_run(backend, "float32", plan.choice.quantize, machine("cpu"))
    return fallback, _load(fallback, setup)


def _measure(plan: RunPlan, setup: _Setup, candidate: _Loaded) -> Verdict:
    """bf16 ``candidate`` against torch float32 on the gate's sample."""
    job, cpu = setup.job, torch.device("cpu")
    if candidate.model is not None:  # torch: the same weights without autocast
        reference: Runtime = TorchRuntime(cast(TorchRuntime, candidate.runtime).head, cpu)
    else:
        reference = TorchRuntime(job.head.wrap(load_transformer(job.path, job.head, cpu,
                                                                torch.float32)), cpu)  # fmt: skip
    batches = sample_batches(job.feeds, job.head.pairs)
    return judge(run_sample(reference.run, batches), run_sample(candidate.runtime.run, batches),
                 scores=job.head.pairs)  # fmt: skip


def load_transformer(path: Path, head: HeadSpec, device: torch.device, dtype: torch.dtype) -> Any:
    """The transformers model under ``head`` (``AutoModel`` or a sequence classifier), in eval."""
    import transformers

    try:
        model = getattr(transformers, head.auto_class).from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise EncoderError(f"cannot load the {head.what} in {path}: {exc}") from None
    return model.to(device=device, dtype=dtype).eval()


def _exported_runtime(
    job: _Export, plan: RunPlan, root: Path, calibration: Calibration, device: str
) -> tuple[Runtime, Accuracy | None]:
    """Load the cached export, building (and for int8, measuring) it the first time."""
    choice = plan.choice
    require_backend(choice.backend)
    slot = export_slot(root, job.fingerprint, job.head.key, choice)
    if not slot.built:
        _build(slot, job, calibration.texts)
    runtime = load_runtime(slot, device, plan.precision)
    if not choice.quantized:
        return runtime, None
    accuracy = slot.accuracy()
    if accuracy is None:
        raise EncoderError(
            f"the cached {choice.backend} {choice.variant} build in {slot.folder} has no "
            "accuracy record: delete that folder and build it again"
        )
    check_accuracy(accuracy, choice, min_cosine=calibration.min_cosine, force=calibration.force)
    return runtime, accuracy


def _build(slot: ExportSlot, job: _Export, calibration_texts: Sequence[str] | None) -> None:
    choice = slot.choice
    calibrate = held_out = None
    if choice.quantized:
        if calibration_texts is None:
            raise ConfigError(
                f"quantize={choice.quantize!r} with backend={choice.backend!r} is built "
                "once per model and needs a sample of your own texts the first time (a few "
                "hundred; some are held out to measure the accuracy loss): pass "
                "calibration_texts=[...], or --calibration FILE on the command line"
            )
        calibrate, held_out = split_calibration(calibration_texts)
    cpu = torch.device("cpu")
    head = job.head.wrap(load_transformer(job.path, job.head, cpu, torch.float32)).eval()
    pairs = EXAMPLE_PAIRS if job.head.pairs else None
    example = job.feeds(EXAMPLE_TEXTS, pairs)
    feeds = calibration_feeds(calibrate, job.feeds) if calibrate else None
    host = machine("cpu").cpu  # the int8 hint trusts a record measured on this CPU kind only
    info = {"model": job.name, "fingerprint": job.fingerprint, "backend": choice.backend,
            "variant": choice.variant,
            "calibration": texts_digest(calibrate) if calibrate else None,
            "cpu": host.model, "cpu_kind": host.kind}  # fmt: skip
    job.report(f"building the {choice.backend} {choice.variant} export of "
               f"{job.name} in {slot.folder} (once per model)")  # fmt: skip
    build(slot, head, example, feeds, info=info)
    if held_out is None:
        return
    reference, candidate = TorchRuntime(head, cpu), load_runtime(slot, "cpu")
    held_feeds = calibration_feeds(held_out, job.feeds, batch=16)
    runs = [(reference.run(f), candidate.run(f)) for f in held_feeds()]
    accuracy = measure_accuracy(
        np.concatenate([r for r, _ in runs]), np.concatenate([c for _, c in runs])
    )
    write_accuracy(slot, accuracy)
    job.report(f"{choice.backend} {choice.variant}: {accuracy.describe()}")


def _silent(message: str) -> None:
    del message
