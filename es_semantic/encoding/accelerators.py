"""Which accelerators torch sees on this machine (for ``es-semantic doctor``)."""

from __future__ import annotations

import torch


def accelerators() -> list[str]:
    """The accelerators torch can use here, by name (``cuda:0 NVIDIA H100``, ``mps``)."""
    found: list[str] = []
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        found = [f"cuda:{i} {torch.cuda.get_device_name(i)}" for i in range(count)]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        found.append("mps")
    return found
