"""Pure choices of how a model runs: backend, precision, quantisation, the gates (no I/O).

``torch`` runs the model as transformers loads it; ``onnx`` (ONNX Runtime) and ``openvino`` run
an export of the same model with pooling and normalisation inside the graph, built once and
cached. A quantised variant is measured against fp32 on held-out texts when it is built, and
refused below ``min_cosine`` unless forced.

``auto`` (backend and precision, the default) is decided here from facts handed in
(:class:`Machine`: the device, the CPU's flags, the runtimes installed): float16 on CUDA;
bfloat16 on a CPU with native bf16 (AVX512_BF16, AMX, Arm BF16), held to the bf16 gate
(:data:`BF16_GATE`) once per model and CPU kind; float32 elsewhere; each on the fastest
installed backend (:data:`FASTEST`, measured by ``benchmarks/encode.py``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, cast, get_args

import numpy as np
import numpy.typing as npt

from es_semantic.errors import ConfigError, EncoderError

Backend = Literal["torch", "onnx", "openvino"]
BACKENDS: tuple[str, ...] = get_args(Backend)
BACKEND_OPTIONS = ("auto", *BACKENDS)
Precision = Literal["float32", "bfloat16", "float16"]
PRECISIONS: tuple[str, ...] = ("auto", *get_args(Precision))
# Fastest first, per precision, on a CPU (docs/guides/speed.md: MiniLM on an AVX-512 + bf16
# CPU, OpenVINO 2.1x torch float32 in bf16 and 1.6x in f32). ONNX Runtime runs float32 only.
FASTEST: dict[str, tuple[Backend, ...]] = {
    "bfloat16": ("openvino", "torch"),
    "float32": ("openvino", "onnx", "torch"),
    "float16": ("torch",),
}
BF16_FLAGS = ("avx512_bf16", "amx_bf16", "bf16")  # x86 AVX512_BF16 / AMX; Arm's BF16 feature
# none: fp32 (fp16 on a GPU with torch); int8: torch's dynamic int8 of the FFN projections;
# int8-dynamic / int8-static: the exported graph quantised by ONNX Runtime or NNCF.
Quantize = Literal["none", "int8", "int8-dynamic", "int8-static"]
QUANTIZE_MODES: tuple[str, ...] = get_args(Quantize)
DEFAULT_MIN_COSINE = 0.99
CALIBRATION_MIN = 16  # texts: below this a quantised model is neither calibrated nor checked
HELD_OUT_SHARE = 0.2
PIP_EXTRA = {"onnx": "onnx", "openvino": "openvino"}
RUNTIME_MODULES = {"onnx": "onnxruntime", "openvino": "openvino"}


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


def precision_option(precision: str | None, dtype: str | None) -> str | None:
    """``precision``, or ``dtype`` (its older name), checked under the name it was given by."""
    for name, value in (("precision", precision), ("dtype", dtype)):
        if value is not None and value not in PRECISIONS:
            raise ConfigError(f"{name}={value!r} is not one of {', '.join(PRECISIONS)}")
    if precision is not None and dtype is not None and precision != dtype:
        raise ConfigError(
            f"precision={precision!r} and dtype={dtype!r} disagree: dtype is the older name of "
            "precision, pass one of them"
        )
    return precision if precision is not None else dtype


@dataclass(frozen=True)
class Gate:
    """The bar bf16 must clear against float32 on the fixed sample for ``auto`` to keep it."""

    mean_cosine: float = 0.9999
    min_cosine: float = 0.9998

    def holds(self, accuracy: Accuracy) -> bool:
        return accuracy.mean_cosine >= self.mean_cosine and accuracy.min_cosine >= self.min_cosine

    def describe(self) -> str:
        return f"mean cosine >= {self.mean_cosine}, min >= {self.min_cosine}"


BF16_GATE = Gate()


@dataclass(frozen=True)
class CpuInfo:
    """The CPU's model name and feature flags (``/proc/cpuinfo``)."""

    model: str = "unknown"
    flags: frozenset[str] = frozenset()

    @property
    def native_bf16(self) -> bool:
        return any(flag in self.flags for flag in BF16_FLAGS)

    @property
    def kind(self) -> str:
        """A short key for "the same CPU": its model name and its flags, hashed."""
        text = self.model + "|" + " ".join(sorted(self.flags))
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def parse_cpuinfo(text: str) -> CpuInfo:
    """The first processor's model name and flags (x86 ``flags``, Arm ``Features``)."""
    model, flags = "unknown", frozenset[str]()
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        key = key.strip().lower()
        if not sep:
            continue
        if key in ("model name", "hardware", "cpu model") and model == "unknown":
            model = value.strip() or model
        elif key in ("flags", "features") and not flags:
            flags = frozenset(value.split())
    return CpuInfo(model, flags)


@dataclass(frozen=True)
class Machine:
    """What ``auto`` decides from: where torch would run, the CPU, the runtimes installed."""

    accelerator: str = "cpu"  # the torch device type: cpu, cuda, mps
    cpu: CpuInfo = CpuInfo()
    installed: frozenset[str] = frozenset({"torch"})


@dataclass(frozen=True)
class RunPlan:
    """A resolved backend and precision; ``gated``: ``auto`` picked bf16, which must hold
    :data:`BF16_GATE` (else float32)."""

    choice: BackendChoice
    precision: Precision
    gated: bool = False


def plan_run(backend: str, precision: str, quantize: str, machine: Machine) -> RunPlan:
    """Resolve ``auto`` backend and precision on ``machine``; refuse what cannot run."""
    if backend not in BACKEND_OPTIONS:
        raise ConfigError(f"backend={backend!r} is not one of {', '.join(BACKEND_OPTIONS)}")
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    if quantize not in QUANTIZE_MODES:
        raise ConfigError(f"quantize={quantize!r} is not one of {', '.join(QUANTIZE_MODES)}")
    on_cpu = machine.accelerator == "cpu"
    gated = False
    if quantize != "none":
        chosen: str = _around_int8(backend, precision, quantize, machine)
    elif precision != "auto":
        chosen = precision
    elif machine.accelerator == "cuda":
        chosen = "float16"
    elif on_cpu and machine.cpu.native_bf16 and backend != "onnx":
        chosen, gated = "bfloat16", True
    else:
        chosen = "float32"
    if backend == "auto":
        backend = _fastest(chosen, quantize, machine)
    if backend == "onnx" and chosen != "float32":
        raise ConfigError(
            f"precision={chosen!r}: ONNX Runtime runs the export in float32 only; use backend "
            "'openvino' or 'torch' for it, or precision 'float32'"
        )
    return RunPlan(BackendChoice(cast(Backend, backend), cast(Quantize, quantize)),
                   cast(Precision, chosen), gated)  # fmt: skip


def _around_int8(backend: str, precision: str, quantize: str, machine: Machine) -> str:
    """The precision of the layers an int8 build leaves unquantised: float32, or bf16 when
    asked by name for OpenVINO on a CPU with native bf16 (about 8% faster, same cosine, #35)."""
    if precision == "bfloat16" and backend == "openvino" and quantize != "int8":
        if machine.accelerator != "cpu" or not machine.cpu.native_bf16:
            raise ConfigError(
                "precision='bfloat16' around int8 layers needs a CPU with native bf16 "
                "(AVX512_BF16 or AMX): use precision 'float32' (or 'auto')"
            )
        return "bfloat16"
    if precision not in ("auto", "float32"):
        raise ConfigError(
            f"quantize={quantize!r} runs float32 around its int8 layers: use precision "
            "'float32' (or 'auto'), or 'bfloat16' with backend 'openvino' on a bf16 CPU"
        )
    return "float32"


def _fastest(precision: str, quantize: str, machine: Machine) -> str:
    if machine.accelerator != "cpu" or quantize == "int8":
        return "torch"  # exported backends run on the CPU; torch's own int8 path
    order: tuple[str, ...] = FASTEST[precision]
    if quantize != "none":  # int8-dynamic / int8-static: an exported graph
        order = ("openvino", "onnx", "torch")
    return next(b for b in (*order, "torch") if b in machine.installed)
