"""Build and cache ONNX / OpenVINO exports of a head (fp32, int8-dynamic, int8-static).

The cache is keyed by the model's fingerprint and the head (pooling, normalisation or score),
so an export happens once per model and variant:
``$ES_SEMANTIC_CACHE_DIR`` (default ``~/.cache/es-semantic``) then
``/exports/<key>/<backend>-<variant>/``.
A build is written to a temporary folder and renamed into place, so a crash leaves no half file.

Export uses the runtimes' own converters (``torch.onnx.export``, ``openvino.convert_model``) and
quantisers (ONNX Runtime's ``quantize_dynamic`` / ``quantize_static``, NNCF): the libraries that
Hugging Face optimum wraps, without optimum's pin of an older transformers.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sys
import tempfile
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from es_semantic.encoding.backend import PIP_EXTRA, Accuracy, BackendChoice
from es_semantic.errors import ConfigError, EncoderError, MissingDependencyError

Feeds = dict[str, np.ndarray]  # input name -> int64 array
INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")
MODEL_FILES = {"onnx": "model.onnx", "openvino": "model.xml"}
QUALITY_FILE = "quality.json"


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where exports live: ``cache_dir``, ``$ES_SEMANTIC_CACHE_DIR``, or the user cache."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser()
    env = os.environ.get("ES_SEMANTIC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "es-semantic"


@dataclass(frozen=True)
class ExportSlot:
    """The folder of one (model, head, backend, variant) build."""

    folder: Path
    choice: BackendChoice

    @property
    def model_file(self) -> Path:
        return self.folder / MODEL_FILES[self.choice.backend]

    @property
    def built(self) -> bool:
        return self.model_file.is_file()

    def accuracy(self) -> Accuracy | None:
        path = self.folder / QUALITY_FILE
        if not path.is_file():
            return None
        data = json.loads(path.read_text(encoding="utf-8"))
        return Accuracy.from_json(data["accuracy"]) if data.get("accuracy") else None


def export_slot(root: Path, fingerprint: str, head_key: str, choice: BackendChoice) -> ExportSlot:
    return ExportSlot(
        root / "exports" / f"{fingerprint}-{head_key}" / f"{choice.backend}-{choice.variant}",
        choice,
    )


def require_backend(backend: str) -> None:
    """A clear error naming the pip command when the backend's runtime is missing."""
    module = {"onnx": "onnxruntime", "openvino": "openvino"}.get(backend)
    if module is None:
        return
    try:
        __import__(module)
    except ImportError as exc:
        raise MissingDependencyError(module, PIP_EXTRA[backend], f"backend={backend!r}") from exc


def build(
    slot: ExportSlot,
    head: Any,
    example: Feeds,
    calibration: Callable[[], Iterator[Feeds]] | None,
    *,
    info: dict[str, Any],
) -> None:
    """Export ``head`` (a torch module) into ``slot``, quantised as the slot's variant asks."""
    slot.folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".build-", dir=slot.folder.parent))
    try:
        job = _Build(tmp / MODEL_FILES[slot.choice.backend], head, example, slot.choice,
                     calibration)  # fmt: skip
        with stdout_to_stderr():  # the quantisers' progress bars and logs: never our data
            (_build_onnx if slot.choice.backend == "onnx" else _build_openvino)(job)
        (tmp / QUALITY_FILE).write_text(json.dumps(info, indent=2), encoding="utf-8")
        _move_into_place(tmp, slot)
    except Exception as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, ConfigError | EncoderError | MissingDependencyError):
            raise
        raise EncoderError(
            f"could not build the {slot.choice.backend} {slot.choice.variant} export "
            f"({type(exc).__name__}: {exc})"
        ) from exc


def _move_into_place(tmp: Path, slot: ExportSlot) -> None:
    """Rename the finished build into the slot; another process that finished the same build
    first wins (its folder is left alone, ours is dropped)."""
    if slot.built:
        shutil.rmtree(tmp, ignore_errors=True)
        return
    if slot.folder.exists():  # a folder without its model file: not a build
        shutil.rmtree(slot.folder, ignore_errors=True)
    try:
        tmp.rename(slot.folder)
    except OSError:
        if not slot.built:
            raise
        shutil.rmtree(tmp, ignore_errors=True)


def write_accuracy(slot: ExportSlot, accuracy: Accuracy) -> None:
    path = slot.folder / QUALITY_FILE
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    data["accuracy"] = accuracy.to_json()
    path.write_text(json.dumps(data, indent=2), encoding="utf-8")


def _torch_inputs(example: Feeds) -> tuple[Any, ...]:
    import torch

    return tuple(torch.from_numpy(example[name]) for name in INPUT_NAMES if name in example)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():  # tracer warnings about constants: the graph is checked
        warnings.simplefilter("ignore")
        yield


@contextlib.contextmanager
def stdout_to_stderr() -> Iterator[None]:
    """Send what a converter or quantiser prints to stderr: NNCF draws its calibration progress
    with rich on ``sys.stdout`` and logs through a handler bound to the stdout of its import,
    which put "Statistics collection ━━━ 100%" ahead of a command's ``--json`` output (#35)."""
    import logging

    handlers = [
        h
        for h in logging.getLogger("nncf").handlers
        if isinstance(h, logging.StreamHandler) and h.stream in (sys.stdout, sys.__stdout__)
    ]
    streams = [h.stream for h in handlers]
    for handler in handlers:
        handler.setStream(sys.stderr)
    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    finally:
        for handler, stream in zip(handlers, streams, strict=True):
            handler.setStream(stream)


def _export_onnx_fp32(path: Path, head: Any, example: Feeds) -> None:
    import torch

    names = [n for n in INPUT_NAMES if n in example]
    axes = {n: {0: "batch", 1: "sequence"} for n in names}
    with _quiet(), torch.inference_mode():
        torch.onnx.export(
            head,
            _torch_inputs(example),
            str(path),
            input_names=names,
            output_names=["output"],
            dynamic_axes={**axes, "output": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )


@dataclass(frozen=True)
class _Build:
    """One export to write: the target file, the head, its example input, the variant."""

    target: Path
    head: Any
    example: Feeds
    choice: BackendChoice
    calibration: Callable[[], Iterator[Feeds]] | None


def _build_onnx(job: _Build) -> None:
    if not job.choice.quantized:
        _export_onnx_fp32(job.target, job.head, job.example)
        return
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_dynamic, quantize_static
    from onnxruntime.quantization.calibrate import CalibrationDataReader
    from onnxruntime.quantization.shape_inference import quant_pre_process

    fp32, prepared = job.target.with_name("fp32.onnx"), job.target.with_name("prepared.onnx")
    _export_onnx_fp32(fp32, job.head, job.example)
    with _quiet():
        quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
        if job.choice.quantize == "int8-dynamic":  # weights per channel, activations per batch
            quantize_dynamic(
                str(prepared),
                str(job.target),
                per_channel=True,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
            )
        else:
            assert job.calibration is not None
            batches = job.calibration()

            class Reader(CalibrationDataReader):  # type: ignore[misc]
                def get_next(self) -> Feeds | None:
                    return next(batches, None)

            quantize_static(
                str(prepared),
                str(job.target),
                Reader(),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                op_types_to_quantize=["MatMul"],
            )
    fp32.unlink()
    prepared.unlink()


def _build_openvino(job: _Build) -> None:
    import openvino as ov
    import torch

    with _quiet(), torch.inference_mode():
        model = ov.convert_model(job.head, example_input=_torch_inputs(job.example))
    names = [n for n in INPUT_NAMES if n in job.example]
    for port, name in zip(model.inputs, names, strict=True):
        port.get_tensor().set_names({name})
    if job.choice.quantized:
        try:
            import nncf
        except ImportError as exc:
            raise MissingDependencyError("nncf", "openvino", "int8 with OpenVINO") from exc
        with _quiet():
            if job.choice.quantize == "int8-static":  # calibrated activations and weights
                assert job.calibration is not None
                samples = list(job.calibration())  # one text a sample
                model = nncf.quantize(
                    model,
                    nncf.Dataset(samples),
                    model_type=nncf.ModelType.TRANSFORMER,
                    subset_size=min(1000, len(samples)),
                )
            else:  # int8 weights, activations quantised by the CPU plugin at run time
                model = nncf.compress_weights(model, mode=nncf.CompressWeightsMode.INT8_ASYM)
    ov.save_model(model, str(job.target), compress_to_fp16=False)


def calibration_feeds(
    texts: Sequence[str], tokenize: Callable[[Sequence[str]], Feeds], batch: int = 1
) -> Callable[[], Iterator[Feeds]]:
    """A re-startable iterator of tokenised calibration batches: one text a sample by default,
    since NNCF counts dataset items as samples (300 texts in batches of 16 were "only 15
    samples") and a padded batch's rows skew the activation ranges (#35)."""

    def batches() -> Iterator[Feeds]:
        for start in range(0, len(texts), batch):
            yield tokenize(texts[start : start + batch])

    return batches
