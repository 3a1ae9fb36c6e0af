"""Opt-in int8 fast path for CPU encoding: dynamic per-channel quantisation of chosen Linears.

Measured on all-MiniLM-L6-v2 over SciFact passages (benchmarks/encode.py): quantising every
Linear is ~2.2x faster but mean cosine to fp32 drops to 0.983 (per-channel) or 0.92
(per-tensor). Quantising only the feed-forward input projections (``intermediate.dense``, the
largest matrices) keeps mean cosine >= 0.995 at ~1.4x; that is what ``quantize="int8"`` does.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from es_semantic.errors import ConfigError

QUANTIZE_MODES = ("none", "int8")
INT8_LAYER_SUFFIXES = ("intermediate.dense",)


def quantize_model(model: Any, mode: str, device: torch.device) -> Any:
    """Return ``model`` unchanged for ``none``, or with int8 dynamic Linears for ``int8``."""
    if mode not in QUANTIZE_MODES:
        raise ConfigError(f"quantize={mode!r} is not one of {', '.join(QUANTIZE_MODES)}")
    if mode == "none":
        return model
    if device.type != "cpu":
        raise ConfigError("quantize='int8' is a CPU path; on a GPU use dtype='float16'")
    with warnings.catch_warnings():  # torch marks eager-mode quantisation as deprecated
        warnings.simplefilter("ignore")
        from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

        chosen = {
            name: per_channel_dynamic_qconfig
            for name, module in model.named_modules()
            if isinstance(module, torch.nn.Linear) and name.endswith(INT8_LAYER_SUFFIXES)
        }
        if not chosen:
            raise ConfigError("quantize='int8' found no feed-forward layers to quantise here")
        return quantize_dynamic(model, chosen, dtype=torch.qint8)  # type: ignore[no-untyped-call]
