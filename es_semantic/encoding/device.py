"""Device and precision choice for torch models."""

from __future__ import annotations

from typing import Literal, get_args

import torch

from es_semantic.errors import ConfigError

Precision = Literal["auto", "float32", "float16", "bfloat16"]
PRECISIONS: tuple[str, ...] = get_args(Precision)
_TORCH_DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


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


def pick_dtype(precision: str | None, device: torch.device) -> torch.dtype:
    """``auto``: float16 on CUDA, float32 elsewhere (bf16 is slower than fp32 on most CPUs)."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ConfigError(f"dtype={precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    return _TORCH_DTYPES[precision]
