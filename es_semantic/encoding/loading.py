"""One way to load a model, for Encoder and CrossEncoder: folder -> tokenizer, window, runtime.

``torch`` runs the transformer under its head (int8 feed-forward on request); ``onnx`` and
``openvino`` run an export of the same head, built once and cached, a quantised build measured
against fp32 on held-out texts and refused below ``min_cosine`` unless forced.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from es_semantic.encoding.backend import (
    DEFAULT_MIN_COSINE,
    Accuracy,
    BackendChoice,
    check_accuracy,
    measure_accuracy,
    split_calibration,
    texts_digest,
)
from es_semantic.encoding.device import pick_device, pick_dtype
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
    dtype: torch.dtype
    runtime: Runtime
    model: Any = None  # the torch model (torch backend only)
    accuracy: Accuracy | None = None  # a quantised export's, measured when it was built


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
    choice: BackendChoice,
    *,
    max_length: int,
    device: str | None = None,
    dtype: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    calibration: Calibration | None = None,
    name: str | None = None,
    report: Callable[[str], None] | None = None,
) -> LoadedModel:
    """Load ``path`` (a resolved model folder) for ``head`` on ``choice``'s backend.

    Exported backends run on the CPU unless ``device`` says otherwise, in float32 (``dtype``
    is a torch option); ``report`` hears of an export being built."""
    torch_device = pick_device(device if device is not None or not choice.exported else "cpu")
    if choice.quantize == "int8" and torch_device.type != "cpu":
        raise ConfigError("quantize='int8' is a CPU path; on a GPU use dtype='float16'")
    torch_dtype = pick_dtype(dtype if not choice.exported else "float32", torch_device)
    config = load_model_config(path)
    tokenizer = load_tokenizer(path)
    window = min(max_length, position_limit(config))
    fingerprint = model_fingerprint(path)
    model, accuracy = None, None
    if choice.exported:
        job = _Export(path, head, name or path.name, fingerprint, tokenizer, window,
                      report or _silent)  # fmt: skip
        runtime, accuracy = _exported_runtime(
            job, choice, cache_dir, calibration or Calibration(), str(torch_device)
        )
    else:
        model = load_transformer(path, head, torch_device, torch_dtype)
        model = quantize_model(model, "int8" if choice.quantized else "none", torch_device)
        runtime = TorchRuntime(head.wrap(model), torch_device)
    return LoadedModel(path, config, fingerprint, tokenizer, window, torch_device, torch_dtype,
                       runtime, model, accuracy)  # fmt: skip


def load_transformer(path: Path, head: HeadSpec, device: torch.device, dtype: torch.dtype) -> Any:
    """The transformers model under ``head`` (``AutoModel`` or a sequence classifier), in eval."""
    import transformers

    try:
        model = getattr(transformers, head.auto_class).from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise EncoderError(f"cannot load the {head.what} in {path}: {exc}") from None
    return model.to(device=device, dtype=dtype).eval()


def _exported_runtime(
    job: _Export,
    choice: BackendChoice,
    cache_dir: str | os.PathLike[str] | None,
    calibration: Calibration,
    device: str,
) -> tuple[Runtime, Accuracy | None]:
    """Load the cached export, building (and for int8, measuring) it the first time."""
    require_backend(choice.backend)
    slot = export_slot(cache_root(cache_dir), job.fingerprint, job.head.key, choice)
    if not slot.built:
        _build(slot, job, calibration.texts)
    runtime = load_runtime(slot, device)
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
    info = {"model": job.name, "fingerprint": job.fingerprint, "backend": choice.backend,
            "variant": choice.variant,
            "calibration": texts_digest(calibrate) if calibrate else None}  # fmt: skip
    job.report(f"building the {choice.backend} {choice.variant} export of "
               f"{job.name} in {slot.folder} (once per model)")  # fmt: skip
    build(slot, head, example, feeds, info=info)
    if held_out is None:
        return
    reference, candidate = TorchRuntime(head, cpu), load_runtime(slot, "cpu")
    runs = [(reference.run(f), candidate.run(f)) for f in calibration_feeds(held_out, job.feeds)()]
    accuracy = measure_accuracy(
        np.concatenate([r for r, _ in runs]), np.concatenate([c for _, c in runs])
    )
    write_accuracy(slot, accuracy)
    job.report(f"{choice.backend} {choice.variant}: {accuracy.describe()}")


def _silent(message: str) -> None:
    del message
