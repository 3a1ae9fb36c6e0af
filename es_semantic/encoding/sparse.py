"""SparseEncoder: a SPLADE-family masked-LM folder -> ``{token: weight}`` per text.

The document side runs the masked LM and pools its logits as sentence-transformers'
``SpladePooling`` does: ``log(1 + ReLU(logits))`` (``log1p_relu``: once more ``log1p``), padding
masked, then the max (or sum) over tokens. Folders: a plain ``*ForMaskedLM`` folder (max, relu);
a sentence-transformers ``SparseEncoder`` folder (``Transformer`` + ``SpladePooling``); or its
``Router`` layout, whose query route may be a ``SparseStaticEmbedding`` (inference-free: a query
is its tokens times the folder's idf weights). ``query_mode="tokens"`` makes any model's queries
inference-free (each distinct token, weight 1).
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import torch

from es_semantic.encoding.backend import Backend, BackendChoice
from es_semantic.encoding.export import Feeds
from es_semantic.encoding.heads import HeadSpec, uses_token_types
from es_semantic.encoding.loading import load_model
from es_semantic.encoding.model_folder import (
    load_model_config,
    model_fingerprint,
    package_location,
    position_limit,
    resolve_model_path,
)
from es_semantic.encoding.token_batches import plan_batches
from es_semantic.encoding.tokens import TokenizedTexts, padded_feeds, tokenize
from es_semantic.errors import ConfigError, EncoderError, InputError

QueryMode = Literal["model", "tokens", "idf"]
QUERY_MODES: tuple[str, ...] = ("model", "tokens", "idf")
SparseVector = dict[str, float]
# Rows and padded tokens per forward pass: the logits are (tokens x vocabulary) floats, 30k
# columns for BERT, so the token budget is a quarter of the dense encoder's.
CPU_BATCH, CPU_TOKENS = 32, 1024
GPU_BATCH, GPU_TOKENS = 256, 16_384


@dataclass(frozen=True)
class SparseSpec:
    """What a folder says about its sparse model (read without loading weights)."""

    name: str
    document_path: Path  # the masked-LM folder (a Router's document subfolder)
    fingerprint: str
    max_length: int
    pooling: str  # max | sum
    activation: str  # relu | log1p_relu
    query_mode: QueryMode
    idf_path: Path | None  # the query route's static weights (safetensors or idf.json)
    query_prefix: str
    document_prefix: str
    folder: str | None = None  # the folder read (resolved), recorded in the index's leg
    package: str | None = None  # "package/sub/folder" when it is inside an installed package


class SpladeHead(torch.nn.Module):
    """masked LM -> masked ``log1p(relu(logits))`` -> max/sum over tokens -> (batch, vocab)."""

    def __init__(self, model: Any, pooling: str, activation: str) -> None:
        super().__init__()
        self.model, self.pooling, self.activation = model, pooling, activation

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        logits = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra).logits
        values = torch.log1p(torch.relu(logits * attention_mask.unsqueeze(-1).to(logits.dtype)))
        if self.activation == "log1p_relu":
            values = torch.log1p(values)
        pooled = values.amax(dim=1) if self.pooling == "max" else values.sum(dim=1)
        return pooled.float()


def splade_head(pooling: str, activation: str) -> HeadSpec:
    """The SPLADE head; exports are keyed by pooling and activation."""
    return HeadSpec(
        key=f"splade-{pooling}-{activation}",
        auto_class="AutoModelForMaskedLM",
        wrap=lambda model: SpladeHead(model, pooling, activation),
        what="masked language model",
    )


def read_sparse_spec(
    path: Path, *, name: str, query_mode: str | None = None, max_length: int | None = None
) -> SparseSpec:
    """The SparseSpec of a plain masked-LM folder or a sentence-transformers sparse folder."""
    modules = _read_json(path / "modules.json")
    st_cfg = _read_json(path / "config_sentence_transformers.json") or {}
    prompts: dict[str, str] = st_cfg.get("prompts") or {}
    document_path, pooling_dir, idf_path = path, None, None
    kinds = [str(m.get("type", "")).rsplit(".", 1)[-1] for m in modules or []]
    if kinds == ["Router"]:
        document_path, pooling_dir, idf_path = _router_routes(path)
    elif modules is not None:
        for module, kind in zip(modules, kinds, strict=True):
            if kind == "SpladePooling":
                pooling_dir = path / str(module.get("path", ""))
            elif kind not in ("Transformer", "MLMTransformer"):
                raise EncoderError(
                    f"{path}/modules.json uses a {kind} module, which the sparse encoder does "
                    "not run; supported: Transformer (fill-mask) + SpladePooling, or a Router"
                )
    pool = (_read_json(pooling_dir / "config.json") or {}) if pooling_dir else {}
    mode = query_mode or ("idf" if idf_path is not None else "model")
    if mode not in QUERY_MODES:
        raise ConfigError(f"query_mode={mode!r} is not one of {', '.join(QUERY_MODES)}")
    if mode == "idf" and idf_path is None:
        raise ConfigError(f"query_mode='idf' needs a folder with idf weights; {path} has none")
    config = load_model_config(document_path)
    bert_cfg = _read_json(document_path / "sentence_bert_config.json") or {}
    window = int(max_length or bert_cfg.get("max_seq_length") or _tokenizer_limit(document_path))
    return SparseSpec(
        name=name, document_path=document_path, fingerprint=model_fingerprint(document_path),
        max_length=min(window, position_limit(config)),
        pooling=str(pool.get("pooling_strategy", "max")),
        activation=str(pool.get("activation_function", "relu")),
        query_mode=cast(QueryMode, mode), idf_path=idf_path,
        query_prefix=prompts.get("query", ""), document_prefix=prompts.get("document", ""),
        folder=str(path.resolve()), package=package_location(path),
    )  # fmt: skip


def _router_routes(path: Path) -> tuple[Path, Path | None, Path | None]:
    """A Router folder: (document masked-LM folder, its SpladePooling folder, idf weights)."""
    router = _read_json(path / "router_config.json") or {}
    types: dict[str, str] = router.get("types") or {}
    routes: dict[str, list[str]] = router.get("structure") or {}

    def kind(folder: str) -> str:
        return types.get(folder, "").rsplit(".", 1)[-1]

    document = routes.get("document") or routes.get("passage") or []
    mlm = [f for f in document if kind(f) in ("Transformer", "MLMTransformer")]
    pooling = [f for f in document if kind(f) == "SpladePooling"]
    if len(mlm) != 1:
        raise EncoderError(f"{path}/router_config.json has no masked-LM document route")
    query = routes.get("query") or []
    idf = None
    if [kind(f) for f in query] == ["SparseStaticEmbedding"]:
        folder = path / query[0]
        configured = (_read_json(folder / "config.json") or {}).get("path")
        idf = Path(configured) if configured else folder / "model.safetensors"
        idf = idf if idf.is_absolute() else folder / idf
    elif query and query != document:
        raise EncoderError(f"{path}: a query route of {[kind(f) for f in query]} is not supported")
    return path / mlm[0], (path / pooling[0]) if pooling else None, idf


def describe_sparse(
    model: str | os.PathLike[str], *, query_mode: str | None = None,
    max_length: int | None = None, local_only: bool = False, **_runtime_options: Any,
) -> SparseSpec:  # fmt: skip
    """The SparseSpec ``SparseEncoder(model, ...)`` would have, without loading weights
    (``local_only``: a hub id from the local cache only, never downloaded)."""
    path = resolve_model_path(model, local_only=local_only)
    name = str(model) if not Path(model).expanduser().is_dir() else path.name
    return read_sparse_spec(path, name=name, query_mode=query_mode, max_length=max_length)


class SparseEncoder:
    """Learned sparse vectors (SPLADE family) as ``{token: weight}`` dicts, weights > 0.

    ``query_mode``: ``model`` (queries run the model like documents), ``idf`` (the folder's
    static query weights; the default where the folder has them) or ``tokens`` (weight 1).
    ``max_active_dims`` keeps each vector's largest weights only (None: all).

    >>> enc = SparseEncoder("/models/splade")                  # doctest: +SKIP
    >>> enc.encode_queries(["what is bm25?"])[0].get("bm")     # doctest: +SKIP
    1.93
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        device: str | None = None,
        max_length: int | None = None,
        dtype: str | None = None,
        backend: str = "torch",
        query_mode: str | None = None,
        max_active_dims: int | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.spec = describe_sparse(model, query_mode=query_mode, max_length=max_length)
        self.source = str(resolve_model_path(model))  # what a Ray worker loads, with load_options
        self.load_options: dict[str, Any] = {
            "query_mode": query_mode, "max_length": max_length, "max_active_dims": max_active_dims,
            "backend": backend, "dtype": dtype,
        }  # fmt: skip
        if max_active_dims is not None and max_active_dims < 1:
            raise ConfigError("max_active_dims must be >= 1 (or None: keep every weight)")
        self.max_active_dims = max_active_dims
        choice = BackendChoice(cast(Backend, backend), "none")
        head = splade_head(self.spec.pooling, self.spec.activation)
        loaded = load_model(
            self.spec.document_path, head, choice, max_length=self.spec.max_length,
            device=device, dtype=dtype, cache_dir=cache_dir, name=self.spec.name, report=report,
        )  # fmt: skip
        self.device, self.tokenizer, self.runtime = loaded.device, loaded.tokenizer, loaded.runtime
        self._types = choice.exported and uses_token_types(self.tokenizer)
        self.vocabulary: list[str] = _vocabulary(self.tokenizer, int(loaded.config.vocab_size))
        self.idf = _load_idf(self.spec.idf_path, self.tokenizer, len(self.vocabulary))
        on_gpu = self.device.type == "cuda"
        self.batch_size = batch_size or (GPU_BATCH if on_gpu else CPU_BATCH)
        self.max_batch_tokens = max_batch_tokens or (GPU_TOKENS if on_gpu else CPU_TOKENS)
        self._lock = threading.Lock()
        self.calls = 0

    @property
    def model_name(self) -> str:
        return self.spec.name

    @property
    def fingerprint(self) -> str:
        return self.spec.fingerprint

    def encode_documents(self, texts: Sequence[str]) -> list[SparseVector]:
        """Sparse vectors for passages (the model, with the document prompt)."""
        return self._model_vectors([self.spec.document_prefix + t for t in _checked(texts)])

    def encode_queries(self, texts: Sequence[str]) -> list[SparseVector]:
        """Sparse vectors for queries: the model, or inference-free (``query_mode``)."""
        texts = [self.spec.query_prefix + t for t in _checked(texts)]
        if self.spec.query_mode == "model":
            return self._model_vectors(texts)
        weights = self.idf if self.spec.query_mode == "idf" else None
        return [self._static(ids, weights) for ids in self._query_ids(texts)]

    def _query_ids(self, texts: Sequence[str]) -> list[list[int]]:
        encoded = self.tokenizer(list(texts), add_special_tokens=False, truncation=True,
                                 max_length=self.spec.max_length)  # fmt: skip
        return cast(list[list[int]], encoded["input_ids"])

    def _static(self, ids: Sequence[int], weights: npt.NDArray[np.float32] | None) -> SparseVector:
        out: SparseVector = {}
        for i in dict.fromkeys(ids):
            weight = 1.0 if weights is None else float(weights[i])
            if weight > 0:
                out[self.vocabulary[i]] = weight
        return self._pruned(out)

    def _model_vectors(self, texts: Sequence[str]) -> list[SparseVector]:
        if not texts:
            return []
        tokens = tokenize(self.tokenizer, texts, self.spec.max_length)
        batches = plan_batches(
            tokens.lengths, max_batch=self.batch_size, max_tokens=self.max_batch_tokens
        )
        out: list[SparseVector] = [{} for _ in texts]
        with self._lock:
            self.calls += 1
            for rows in batches:
                pooled = self.runtime.run(self._feeds(tokens, rows))
                for row, values in zip(rows, pooled, strict=True):
                    out[row] = self._to_dict(values)
        return out

    def _feeds(self, tokens: TokenizedTexts, rows: list[int]) -> Feeds:
        return padded_feeds(tokens, rows, self.tokenizer, token_types=self._types)

    def _to_dict(self, values: npt.NDArray[np.float32]) -> SparseVector:
        active = np.flatnonzero(values > 0)
        if self.max_active_dims is not None and active.size > self.max_active_dims:
            top = np.argpartition(-values[active], self.max_active_dims - 1)
            active = active[top[: self.max_active_dims]]
        return {self.vocabulary[i]: float(values[i]) for i in active.tolist()}

    def _pruned(self, vector: SparseVector) -> SparseVector:
        if self.max_active_dims is None or len(vector) <= self.max_active_dims:
            return vector
        kept = sorted(vector.items(), key=lambda kv: -kv[1])[: self.max_active_dims]
        return dict(kept)


def _vocabulary(tokenizer: Any, size: int) -> list[str]:
    """Token strings by id (ids the tokenizer lacks become ``[unused<id>]``)."""
    names = tokenizer.convert_ids_to_tokens(list(range(size)))
    return [n if isinstance(n, str) and n else f"[unused{i}]" for i, n in enumerate(names)]


def _load_idf(path: Path | None, tokenizer: Any, size: int) -> npt.NDArray[np.float32] | None:
    """A SparseStaticEmbedding's weights: safetensors ``weight`` or an ``idf.json`` mapping."""
    if path is None:
        return None
    if not path.is_file():
        raise EncoderError(f"the query weights {path} are missing from the model folder")
    if path.suffix == ".json":
        idf: dict[str, float] = json.loads(path.read_text(encoding="utf-8"))
        weights = np.zeros(size, dtype=np.float32)
        ids = tokenizer.convert_tokens_to_ids(list(idf))
        for token_id, value in zip(ids, idf.values(), strict=True):
            if token_id is not None and 0 <= token_id < size:
                weights[token_id] = value
        return weights
    from safetensors.numpy import load_file

    tensors = load_file(str(path))
    if "weight" not in tensors:
        raise EncoderError(f"{path} has no 'weight' tensor (the query route's idf weights)")
    return np.asarray(tensors["weight"], dtype=np.float32)


def _tokenizer_limit(path: Path) -> int:
    tok = _read_json(path / "tokenizer_config.json") or {}
    limit = tok.get("model_max_length")
    return int(limit) if isinstance(limit, int | float) and 0 < limit < 1_000_000 else 512


def _checked(texts: Sequence[str]) -> list[str]:
    if isinstance(texts, str):
        raise InputError("encode takes a list of texts, not one string: wrap it as [text]")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text #{i} is {type(text).__name__}, not str")
    return list(texts)


def _read_json(path: Path) -> Any:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise EncoderError(f"{path} is not valid JSON (line {exc.lineno}): {exc.msg}") from None
