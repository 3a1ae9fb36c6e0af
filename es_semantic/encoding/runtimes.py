"""Runtimes: padded int64 arrays in, the head's float32 output out — torch, ONNX Runtime or
OpenVINO behind one ``run(feeds)``."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Protocol, cast

import numpy as np
import numpy.typing as npt

from es_semantic.encoding.export import ExportSlot, Feeds

FloatArray = npt.NDArray[np.float32]


class Runtime(Protocol):
    """Runs one padded batch through a head."""

    def run(self, feeds: Feeds) -> FloatArray: ...


class TorchRuntime:
    """A torch head on its device (fp16 on a GPU by default, SDPA attention)."""

    def __init__(self, head: Any, device: Any) -> None:
        self.head, self.device = head, device

    def run(self, feeds: Feeds) -> FloatArray:
        import torch

        tensors = {k: torch.from_numpy(v).to(self.device, non_blocking=True)
                   for k, v in feeds.items()}  # fmt: skip
        with torch.inference_mode():
            return cast(FloatArray, self.head(**tensors).float().cpu().numpy())


class OnnxRuntime:
    """An ONNX Runtime session over an exported head (graph optimisations on)."""

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
    """An OpenVINO compiled model (latency hint: one batch at a time, all cores on it)."""

    def __init__(self, path: Path, device: str = "cpu") -> None:
        import openvino as ov

        target = "GPU" if device.startswith(("cuda", "gpu")) else "CPU"
        compiled = ov.Core().compile_model(str(path), target, {"PERFORMANCE_HINT": "LATENCY"})
        self.request = compiled.create_infer_request()
        self.inputs = {port.get_any_name() for port in compiled.inputs}

    def run(self, feeds: Feeds) -> FloatArray:
        wanted = {k: v for k, v in feeds.items() if k in self.inputs}
        result = self.request.infer(wanted)
        return np.array(next(iter(result.values())), dtype=np.float32)


def load_runtime(slot: ExportSlot, device: str) -> Runtime:
    """The runtime of a built export."""
    if slot.choice.backend == "onnx":
        return OnnxRuntime(slot.model_file, device)
    return OpenVinoRuntime(slot.model_file, device)
