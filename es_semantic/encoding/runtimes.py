"""Runtimes: padded int64 arrays in, the head's float32 output out — torch, ONNX Runtime or
OpenVINO behind one ``run(feeds)``, each at a precision asked for and named (``precision``):
never a runtime's own default."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from es_semantic.encoding.export import ExportSlot, Feeds

FloatArray = npt.NDArray[np.float32]
# OpenVINO's element types for INFERENCE_PRECISION_HINT, and back
OPENVINO_HINTS = {"float32": "f32", "bfloat16": "bf16", "float16": "f16"}
OPENVINO_NAMES = {hint: name for name, hint in OPENVINO_HINTS.items()}


class Runtime(Protocol):
    """Runs one padded batch through a head; ``precision`` names the precision that runs."""

    precision: str

    def run(self, feeds: Feeds) -> FloatArray: ...


class TorchRuntime:
    """A torch head on its device (fp16 on a GPU by default, SDPA attention).

    On CUDA the cuDNN attention backend is left out: it builds an execution plan for every new
    (batch, width) shape, and length-sorted batches are nearly all new shapes. Measured on an
    H100 (MiniLM, 256 rows of varying width): 3,753 sequences/s with it, 25,441 without.
    """

    def __init__(
        self, head: Any, device: Any, precision: str = "float32", autocast: Any = None
    ) -> None:
        self.head, self.device, self.precision = head, device, precision
        self.autocast = autocast  # a torch dtype: bf16 autocast on a CPU over float32 weights

    def run(self, feeds: Feeds) -> FloatArray:
        import contextlib

        import torch

        tensors = {k: t.to(self.device, non_blocking=True)
                   for k, t in host_tensors(feeds, self.device).items()}  # fmt: skip
        cast_to = (
            torch.autocast(self.device.type, dtype=self.autocast)
            if self.autocast is not None
            else contextlib.nullcontext()
        )
        with torch.inference_mode(), _attention_backends(self.device), cast_to:
            return cast(FloatArray, self.head(**tensors).float().cpu().numpy())


def host_tensors(feeds: Feeds, device: Any) -> dict[str, Any]:
    """CPU tensors over ``feeds``: copied into page-locked (pinned) memory when they go to a
    CUDA device, so that ``.to(device, non_blocking=True)`` is an asynchronous copy (from
    pageable memory it is not); elsewhere the arrays' own memory, no copy."""
    import torch

    tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
    if _device_type(device) == "cuda":
        return {k: t.pin_memory() for k, t in tensors.items()}
    return tensors


def _device_type(device: Any) -> str:
    return str(getattr(device, "type", device)).split(":")[0]


def _attention_backends(device: Any) -> Any:
    """SDPA without cuDNN on CUDA (flash, memory-efficient, math); unchanged elsewhere."""
    import contextlib

    if _device_type(device) != "cuda":
        return contextlib.nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel(
        [SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH]
    )


class OnnxRuntime:
    """An ONNX Runtime session over an exported head (graph optimisations on), in float32: the
    export is float32 and ONNX Runtime's CPU kernels run it as it is (``plan_run`` refuses
    another precision for it, naming the backends that have one)."""

    precision = "float32"

    def __init__(self, path: Path, device: str = "cpu") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        providers = ["CPUExecutionProvider"]
        if device.startswith("cuda") and "CUDAExecutionProvider" in ort.get_available_providers():
            providers.insert(0, "CUDAExecutionProvider")
        self.session = ort.InferenceSession(str(path), options, providers=providers)
        self.inputs = {i.name for i in self.session.get_inputs()}

    def run(self, feeds: Feeds) -> FloatArray:
        wanted = {k: v for k, v in feeds.items() if k in self.inputs}
        return cast(FloatArray, self.session.run(None, wanted)[0].astype(np.float32, copy=False))


class OpenVinoRuntime:
    """An OpenVINO compiled model (latency hint: one batch at a time, all cores on it) at the
    precision asked: ``INFERENCE_PRECISION_HINT`` is always set, since the CPU plugin would
    otherwise pick bf16 by itself on a CPU with AVX512_BF16 or AMX. ``precision`` is read back
    from the compiled model: what runs, should the plugin not honour the hint."""

    def __init__(self, path: Path, device: str = "cpu", precision: str = "float32") -> None:
        import openvino as ov

        target = "GPU" if device.startswith(("cuda", "gpu")) else "CPU"
        config = {"PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT":
                  OPENVINO_HINTS[precision]}  # fmt: skip
        compiled = _off_thread(lambda: ov.Core().compile_model(str(path), target, config))
        ran = compiled.get_property("INFERENCE_PRECISION_HINT")
        self.precision = OPENVINO_NAMES.get(ran.get_type_name(), str(ran))
        self.request = compiled.create_infer_request()
        self.inputs = {port.get_any_name() for port in compiled.inputs}

    def run(self, feeds: Feeds) -> FloatArray:
        wanted = {k: v for k, v in feeds.items() if k in self.inputs}
        result = self.request.infer(wanted)
        return np.array(next(iter(result.values())), dtype=np.float32)


def _off_thread(compile_model: Callable[[], Any]) -> Any:
    """``compile_model()`` in a thread of its own. OpenVINO's CPU plugin gives the compiling
    thread an alternate signal stack and, when the model is freed, puts back the one it
    replaced only if its own is still current: two models freed in the order they were made
    leave that thread on unmapped memory, and its next signal (Ctrl-C) is a SIGSEGV. The
    thread that took the stack ends here; no thread of ours keeps it."""
    result: dict[str, Any] = {}

    def compile_it() -> None:
        try:
            result["model"] = compile_model()
        except BaseException as exc:  # raised again in the caller's thread
            result["error"] = exc

    worker = threading.Thread(target=compile_it, name="es-semantic-openvino-compile")
    worker.start()
    worker.join()
    if "error" in result:
        raise result["error"]
    return result["model"]


def load_runtime(slot: ExportSlot, device: str, precision: str = "float32") -> Runtime:
    """The runtime of a built export, at ``precision`` (ONNX Runtime: float32 only)."""
    if slot.choice.backend == "onnx":
        return OnnxRuntime(slot.model_file, device)
    return OpenVinoRuntime(slot.model_file, device, precision)
