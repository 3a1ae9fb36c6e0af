"""The machine a benchmark ran on, for its ``--json``: CPU model, flags that matter, cores, GPU."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_bf16", "fma", "f16c")


def machine() -> dict[str, Any]:
    """CPU model, the SIMD flags present (and all flags), cores, and the GPU if torch sees one."""
    model, flags = platform.processor() or platform.machine(), list[str]()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            key, _, value = line.partition(":")
            if key.strip() == "model name" and value.strip():
                model = value.strip()
            elif key.strip() == "flags" and not flags:
                flags = value.split()
    return {
        "cpu": model,
        "simd": [f for f in FLAGS if f in flags],
        "cpu_flags": " ".join(flags),
        "cores": os.cpu_count(),
        "gpu": _gpu(),
        "python": platform.python_version(),
    }


def _gpu() -> str | None:
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def describe(info: dict[str, Any]) -> str:
    """One line: ``CPU model (N cores; avx2, avx512f, ...)[, GPU]``."""
    gpu = f", {info['gpu']}" if info.get("gpu") else ""
    return f"{info['cpu']} ({info['cores']} cores; {', '.join(info['simd']) or 'no AVX'}){gpu}"
