"""The int8 hint of ``index`` and ``serve`` (#35): where this machine's export cache holds an
int8 build of the model that runs in float, and the accuracy recorded when it was built (on this
CPU kind) meets the int8 goal, say so in one line. A hint, never a default: nothing is built,
loaded or measured here, only the builds' ``quality.json`` records are read.

The goal is #35's: mean cosine >= 0.995 and min >= 0.99 against float32 on the held-out texts
of the build's calibration sample. (Its third part, SciFact kNN nDCG@10 within 0.005 of float32,
is ``benchmarks.encode``'s: a build has no relevance judgements to measure it with.)
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from es_semantic.config import EncoderConfig
from es_semantic.encoding.backend import Accuracy, BackendChoice, CpuInfo, Gate
from es_semantic.encoding.export import QUALITY_FILE, cache_root, export_slot
from es_semantic.encoding.heads import sentence_head

INT8_GOAL = Gate(mean_cosine=0.995, min_cosine=0.99)
# Calibrated builds only, fastest first. On SciFact (docs/guides/speed.md, AVX-512 + VNNI, quiet
# machine) OpenVINO int8-static ran 3.4x torch float32 at mean cosine 0.9970 and nDCG@10 0.8059
# against 0.8093, within the goal; ONNX Runtime int8-dynamic, uncalibrated, met the cosine bar
# (mean 0.99501, min 0.9916) yet lost 0.0096 of nDCG@10: a dynamic build's cosine at the bar
# does not vouch for its retrieval, so no dynamic build is hinted.
INT8_BUILDS = (BackendChoice("openvino", "int8-static"), BackendChoice("onnx", "int8-static"))


def build_record(folder: Path) -> tuple[Accuracy, str | None] | None:
    """A build's recorded accuracy and the CPU kind it was measured on (``None`` for builds
    made before the kind was recorded), or ``None`` where there is no readable record."""
    try:
        data = json.loads((folder / QUALITY_FILE).read_text(encoding="utf-8"))
        accuracy = Accuracy.from_json(data["accuracy"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    kind = data.get("cpu_kind")
    return accuracy, kind if isinstance(kind, str) else None


def int8_hint(
    config: EncoderConfig,
    cpu: CpuInfo,
    *,
    on_cpu: bool = True,
    cache_dir: str | os.PathLike[str] | None = None,
) -> str | None:
    """The hint line for an encoder described by ``config`` running on ``cpu``, or ``None``:
    already quantised, not on the CPU, not a text model, or no calibrated int8 build of the same
    weights and head measured on this CPU kind that holds :data:`INT8_GOAL`."""
    if config.quantize != "none" or not on_cpu or config.modality != "text":
        return None
    head = sentence_head(config.pooling, config.normalize).key
    root = cache_root(cache_dir)
    for choice in INT8_BUILDS:
        slot = export_slot(root, config.fingerprint, head, choice)
        record = build_record(slot.folder) if slot.built else None
        if record is None or record[1] != cpu.kind or not INT8_GOAL.holds(record[0]):
            continue
        a = record[0]
        return (
            f"hint: an int8 build of {config.model_name} holds accuracy on this CPU (mean "
            f"cosine {a.mean_cosine:.4f}, min {a.min_cosine:.4f} against float32 on {a.texts} "
            f"held-out texts; goal {INT8_GOAL.describe()}): `--backend {choice.backend} "
            f"--quantize {choice.quantize}` runs it in int8, faster where the CPU has VNNI "
            "(docs/guides/speed.md)"
        )
    return None
