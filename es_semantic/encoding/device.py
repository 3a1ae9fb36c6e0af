"""Device and precision for torch models, and the machine facts ``auto`` decides from."""

from __future__ import annotations

import functools
import importlib.util
import sys
from pathlib import Path

import torch

from es_semantic.encoding.backend import (
    PRECISIONS,
    RUNTIME_MODULES,
    CpuInfo,
    Machine,
    parse_cpuinfo,
)
from es_semantic.errors import ConfigError

TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
CPUINFO = Path("/proc/cpuinfo")


def pick_device(device: str | None) -> torch.device:
    """``None``/"auto": CUDA, then MPS, then CPU; otherwise the named device, checked."""
    if device in (None, "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        chosen = torch.device(device)
    except RuntimeError:
        raise ConfigError(
            f"device={device!r} is not a torch device (cpu, cuda, cuda:1, mps)"
        ) from None
    if chosen.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device={device!r} asked for CUDA, but torch sees no CUDA GPU")
    return chosen


def check_precision(precision: str | None) -> str:
    """``precision`` (``None`` is ``auto``), one of :data:`PRECISIONS`."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ConfigError(f"precision={precision!r} is not one of {', '.join(PRECISIONS)}")
    return precision


def weights_dtype(precision: str, device: torch.device) -> torch.dtype:
    """The dtype torch weights are held in: bf16 on a CPU runs under autocast over float32
    weights (faster and closer to float32 than casting them: docs/guides/speed.md)."""
    if precision == "bfloat16" and device.type == "cpu":
        return torch.float32
    return TORCH_DTYPES[precision]


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on a CPU; ``None`` (weights in their dtype) elsewhere."""
    return torch.bfloat16 if precision == "bfloat16" and device.type == "cpu" else None


@functools.cache
def cpu_info() -> CpuInfo:
    """This machine's CPU model and flags (empty where ``/proc/cpuinfo`` is not readable)."""
    try:
        return parse_cpuinfo(CPUINFO.read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return CpuInfo()


def installed_backends() -> frozenset[str]:
    """torch, and the exported runtimes that can be imported (found, not imported)."""
    found = {"torch"}
    for backend, module in RUNTIME_MODULES.items():
        if module in sys.modules:
            if sys.modules[module] is not None:
                found.add(backend)
            continue
        try:
            if importlib.util.find_spec(module) is not None:
                found.add(backend)
        except (ImportError, ValueError):
            pass
    return frozenset(found)


def machine(accelerator: str) -> Machine:
    """The facts ``auto`` decides from, for a model that torch would run on ``accelerator``."""
    return Machine(accelerator, cpu_info(), installed_backends())
