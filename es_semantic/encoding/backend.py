"""Pure choices of how a model runs: backend, quantisation, and the accuracy gate (no I/O).

``torch`` runs the model as transformers loads it; ``onnx`` (ONNX Runtime) and ``openvino`` run
an export of the same model with pooling and normalisation inside the graph, built once and
cached. A quantised variant is measured against fp32 on held-out texts when it is built, and
refused below ``min_cosine`` unless forced.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, get_args

import numpy as np
import numpy.typing as npt

from es_semantic.errors import ConfigError, EncoderError

Backend = Literal["torch", "onnx", "openvino"]
BACKENDS: tuple[str, ...] = get_args(Backend)
# none: fp32 (fp16 on a GPU with torch); int8: torch's dynamic int8 of the FFN projections;
# int8-dynamic / int8-static: the exported graph quantised by ONNX Runtime or NNCF.
Quantize = Literal["none", "int8", "int8-dynamic", "int8-static"]
QUANTIZE_MODES: tuple[str, ...] = get_args(Quantize)
DEFAULT_MIN_COSINE = 0.99
CALIBRATION_MIN = 16  # texts: below this a quantised model is neither calibrated nor checked
HELD_OUT_SHARE = 0.2
PIP_EXTRA = {"onnx": "onnx", "openvino": "openvino"}


@dataclass(frozen=True)
class BackendChoice:
    """A checked (backend, quantize) pair; ``variant`` names the cached build."""

    backend: Backend = "torch"
    quantize: Quantize = "none"

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ConfigError(f"backend={self.backend!r} is not one of {', '.join(BACKENDS)}")
        if self.quantize not in QUANTIZE_MODES:
            raise ConfigError(
                f"quantize={self.quantize!r} is not one of {', '.join(QUANTIZE_MODES)}"
            )
        if self.backend == "torch" and self.quantize == "int8-static":
            raise ConfigError(
                "quantize='int8-static' needs an exported graph: use backend 'onnx' or 'openvino'"
            )
        if self.backend != "torch" and self.quantize == "int8":
            object.__setattr__(self, "quantize", "int8-dynamic")

    @property
    def exported(self) -> bool:
        return self.backend != "torch"

    @property
    def quantized(self) -> bool:
        return self.quantize != "none"

    @property
    def variant(self) -> str:
        return "fp32" if self.quantize == "none" else self.quantize


@dataclass(frozen=True)
class Accuracy:
    """How close a quantised model's vectors are to fp32's on held-out texts."""

    mean_cosine: float
    min_cosine: float
    texts: int

    def describe(self) -> str:
        return (
            f"mean cosine {self.mean_cosine:.4f}, min {self.min_cosine:.4f} to fp32 "
            f"on {self.texts} held-out texts"
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Accuracy:
        return cls(float(data["mean_cosine"]), float(data["min_cosine"]), int(data["texts"]))


def measure_accuracy(
    reference: npt.NDArray[np.float32], candidate: npt.NDArray[np.float32]
) -> Accuracy:
    """Row-wise cosine of ``candidate`` to ``reference`` (same texts, same order)."""
    if reference.shape != candidate.shape or not len(reference):
        raise ValueError("reference and candidate need the same non-empty shape")
    ref = reference / np.maximum(np.linalg.norm(reference, axis=1, keepdims=True), 1e-12)
    cand = candidate / np.maximum(np.linalg.norm(candidate, axis=1, keepdims=True), 1e-12)
    cosine = (ref * cand).sum(axis=1)
    return Accuracy(float(cosine.mean()), float(cosine.min()), len(cosine))


def check_accuracy(
    accuracy: Accuracy, choice: BackendChoice, *, min_cosine: float, force: bool
) -> None:
    """Refuse a quantised model whose mean cosine to fp32 is below ``min_cosine``."""
    if force or accuracy.mean_cosine >= min_cosine:
        return
    raise EncoderError(
        f"{choice.backend} {choice.variant} loses too much accuracy: {accuracy.describe()}, "
        f"below the threshold {min_cosine}. Use quantize='none' (or another variant), lower "
        "min_cosine, or force it with force_quantized=True / --force-quantized"
    )


def split_calibration(texts: Sequence[str]) -> tuple[list[str], list[str]]:
    """Calibration texts and held-out texts (the last ~20%, at least 8), never overlapping."""
    unique = list(dict.fromkeys(t for t in texts if t.strip()))
    if len(unique) < CALIBRATION_MIN:
        raise ConfigError(
            f"a quantised model needs at least {CALIBRATION_MIN} distinct sample texts of your "
            f"own (a few hundred is better) to calibrate and check it; got {len(unique)}"
        )
    held = max(8, int(len(unique) * HELD_OUT_SHARE))
    return unique[:-held], unique[-held:]


def texts_digest(texts: Sequence[str]) -> str:
    """A short id of a calibration sample, recorded beside the build."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode()).hexdigest()[:16]
