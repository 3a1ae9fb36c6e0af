"""Encoder: a Hugging Face model folder -> L2-normalised float32 sentence vectors."""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from es_semantic.config import EncoderConfig, PoolingMode
from es_semantic.encoding.backend import (
    DEFAULT_MIN_COSINE,
    Accuracy,
    BackendChoice,
    precision_option,
)
from es_semantic.encoding.export import Feeds
from es_semantic.encoding.heads import sentence_head, uses_token_types
from es_semantic.encoding.loading import Calibration, load_model, predict_plan
from es_semantic.encoding.model_folder import (
    default_model_path,
    load_model_config,
    model_fingerprint,
    position_limit,
    read_model_spec,
    resolve_model_path,
)
from es_semantic.encoding.prefetch import Prefetch, window_batches
from es_semantic.encoding.runtimes import Runtime
from es_semantic.encoding.token_batches import plan_batches
from es_semantic.encoding.tokens import TokenizedTexts, padded_feeds, token_spans, tokenize
from es_semantic.errors import ConfigError, InputError, MissingDependencyError

TextKind = Literal["query", "document"]
FloatArray = npt.NDArray[np.float32]
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
# Batch limits: rows and padded tokens per forward pass. A GPU wants large batches (it is idle
# between them); a CPU gains nothing past a few thousand tokens and pads less with small ones.
CPU_BATCH, CPU_TOKENS = 32, 4096
GPU_BATCH, GPU_TOKENS = 512, 65_536


@dataclass(frozen=True)
class Embeddings:
    """Vectors with what happened on the way: which texts were cut at ``max_length``."""

    vectors: FloatArray
    truncated: npt.NDArray[np.bool_]

    @property
    def truncated_count(self) -> int:
        return int(self.truncated.sum())


def describe_encoder(
    model: str | os.PathLike[str] | None = None,
    *,
    pooling: PoolingMode | None = None,
    normalize: bool | None = None,
    max_length: int | None = None,
    backend: str = "auto",
    quantize: str = "none",
    query_prefix: str | None = None,
    document_prefix: str | None = None,
    precision: str | None = None,
    dtype: str | None = None,
    device: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    **_runtime_options: Any,
) -> EncoderConfig:
    """The :class:`EncoderConfig` that ``Encoder(model, ...)`` with these options would have,
    read from the model folder without loading weights (options that only change how it runs
    are accepted; ``auto`` backend and precision are resolved as the encoder would, bf16 from
    the gate's cached verdict where there is one)."""
    path = resolve_model_path(model) if model is not None else default_model_path()
    spec = read_model_spec(path, name=str(model) if model is not None else None)
    model_config = load_model_config(path)
    pooling = pooling or spec.pooling
    normalize = spec.normalize if normalize is None else normalize
    plan = predict_plan(path, sentence_head(pooling, normalize), backend, quantize,
                        precision=precision_option(precision, dtype), device=device,
                        cache_dir=cache_dir)  # fmt: skip
    return EncoderConfig(
        model_name=_display_name(model, path),
        model_path=str(path),
        fingerprint=model_fingerprint(path),
        pooling=pooling,
        normalize=normalize,
        max_length=min(max_length or spec.max_length, position_limit(model_config)),
        query_prefix=spec.query_prefix if query_prefix is None else query_prefix,
        document_prefix=spec.document_prefix if document_prefix is None else document_prefix,
        dim=int(model_config.hidden_size),
        backend=plan.choice.backend,
        quantize=plan.choice.quantize,
        precision=plan.precision,
    )


class Encoder:
    """Sentence embeddings from a local model folder (sentence-transformers layout or plain).

    ``backend``: ``auto`` (default), ``torch``, ``onnx`` (ONNX Runtime) or ``openvino``; the
    last two run an export built once and cached (``cache_dir``). ``precision`` (``dtype`` is its
    older name): ``auto`` (default: float16 on CUDA; bfloat16 on a CPU with native bf16 where it
    holds mean cosine >= 0.9999, min >= 0.9998 to float32 on a fixed sample, measured once per
    model and CPU and cached; float32 elsewhere), ``float32`` (exact vectors), ``bfloat16`` or
    ``float16``; ``auto`` backend is the fastest installed at that precision. ``precision``,
    ``config.backend`` and ``config.precision`` name what runs. ``quantize``: ``none``;
    ``int8`` (torch: dynamic int8 of the feed-forward projections); ``int8-dynamic`` /
    ``int8-static`` (exported graphs; static is calibrated). A quantised build needs
    ``calibration_texts`` (a few hundred of your own texts; 20% are held out) the first time:
    its mean/min cosine to fp32 is printed and it is refused below ``min_cosine`` unless
    ``force_quantized``. ``prefetch``: tokenise the next batch in a worker thread while one
    runs (default: on CUDA only).

    >>> enc = Encoder("/models/all-MiniLM-L6-v2")          # doctest: +SKIP
    >>> enc.encode_queries(["what is bm25?"]).shape        # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        *,
        pooling: PoolingMode | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        device: str | None = None,
        precision: str | None = None,
        dtype: str | None = None,
        backend: str = "auto",
        quantize: str = "none",
        calibration_texts: Sequence[str] | None = None,
        cache_dir: str | os.PathLike[str] | None = None,
        min_cosine: float = DEFAULT_MIN_COSINE,
        force_quantized: bool = False,
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        batch_size: int | None = None,
        max_batch_tokens: int | None = None,
        report: Callable[[str], None] | None = None,
        prefetch: bool | None = None,
    ) -> None:
        precision = precision_option(precision, dtype)
        config = describe_encoder(
            model, pooling=pooling, normalize=normalize, max_length=max_length, backend=backend,
            quantize=quantize, query_prefix=query_prefix, document_prefix=document_prefix,
            precision=precision, device=device, cache_dir=cache_dir,
        )  # fmt: skip
        if (batch_size or 1) < 1 or (max_batch_tokens or 1) < 1:
            raise ConfigError("batch_size and max_batch_tokens must be >= 1")
        calibration = Calibration(calibration_texts, min_cosine, force_quantized)
        head = sentence_head(config.pooling, config.normalize)
        loaded = load_model(
            Path(config.model_path), head, backend, quantize=quantize,
            max_length=config.max_length, device=device, precision=precision,
            cache_dir=cache_dir, calibration=calibration, name=config.model_name,
            report=report or _to_stderr,
        )  # fmt: skip
        self.choice: BackendChoice = loaded.choice
        self.precision: str = loaded.precision  # what runs: float32, bfloat16 or float16
        self.config = replace(config, backend=self.choice.backend,
                              quantize=self.choice.quantize, precision=self.precision)  # fmt: skip
        self.device, self.torch_dtype = loaded.device, loaded.dtype
        self.tokenizer: Any = loaded.tokenizer
        self.runtime: Runtime = loaded.runtime
        self.model: Any = loaded.model  # the torch model (torch backend), for inspection
        self.accuracy: Accuracy | None = loaded.accuracy
        self.quantize = self.choice.quantize
        self._types = self.choice.exported and uses_token_types(self.tokenizer)
        on_gpu = self.device.type == "cuda"
        self.batch_size = batch_size or (GPU_BATCH if on_gpu else CPU_BATCH)
        self.max_batch_tokens = max_batch_tokens or (GPU_TOKENS if on_gpu else CPU_TOKENS)
        self._lock = threading.Lock()  # one forward pass at a time: threads share the cores
        # tokenise the next batch in a worker thread while one runs: on CUDA by default (on
        # this project's 2-core CPU the tokenizer and the model share the cores: docs speed.md)
        self.prefetch: bool = on_gpu if prefetch is None else prefetch
        self.calls = 0  # encode calls made, for tests and reports

    @property
    def dim(self) -> int:
        """Vector size, known without encoding anything."""
        return self.config.dim

    def encode_documents(self, texts: Sequence[str]) -> FloatArray:
        """Vectors for passages, with the document prompt/prefix."""
        return self.embed(texts, kind="document").vectors

    def encode_queries(self, texts: Sequence[str]) -> FloatArray:
        """Vectors for queries, with the query prompt/prefix (e5 ``query: ``, BGE instruction)."""
        return self.embed(texts, kind="query").vectors

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts (special tokens included) before truncation."""
        encoded = self.tokenizer(list(texts), add_special_tokens=True, truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def token_spans(self, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
        """Character spans of each text's tokens, for chunking (no prefix, no special tokens)."""
        return token_spans(self.tokenizer, texts)

    def passage_budget(self) -> int:
        """How many text tokens fit one window once special tokens and the prefix are added."""
        prefix = self.config.document_prefix
        prefix_tokens = len(token_spans(self.tokenizer, [prefix])[0]) if prefix.strip() else 0
        specials = int(self.tokenizer.num_special_tokens_to_add(pair=False))
        return max(1, self.config.max_length - specials - prefix_tokens)

    def embed(self, texts: Sequence[str], *, kind: TextKind = "document") -> Embeddings:
        """Length-sorted, token-budgeted batches; results in input order, float32 (n, dim)."""
        _check_texts(texts)
        if not texts:
            return Embeddings(np.zeros((0, self.dim), np.float32), np.zeros(0, dtype=bool))
        prefix = self.config.query_prefix if kind == "query" else self.config.document_prefix
        if self.prefetch and len(texts) > self.batch_size:  # one window: nothing to overlap
            return self._embed_prefetched([prefix + t for t in texts])
        tokens = tokenize(self.tokenizer, [prefix + t for t in texts], self.config.max_length)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batches = plan_batches(
            tokens.lengths, max_batch=self.batch_size, max_tokens=self.max_batch_tokens
        )
        with self._lock:
            self.calls += 1
            for rows in batches:
                out[rows] = self.runtime.run(self._feeds(tokens, rows))
        return Embeddings(np.ascontiguousarray(out), tokens.truncated)

    def _embed_prefetched(self, texts: list[str]) -> Embeddings:
        """``embed`` with the next window tokenised in a worker thread while a batch runs (the
        worker starts before the lock is taken: the first window is ready sooner)."""
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        truncated = np.zeros(len(texts), dtype=bool)
        planned = window_batches(
            self.tokenizer, texts, self.config.max_length, window=self.batch_size,
            max_batch=self.batch_size, max_tokens=self.max_batch_tokens, feeds=self._feeds,
            truncated=truncated,
        )  # fmt: skip
        with Prefetch(planned) as batches, self._lock:
            self.calls += 1
            for rows, feeds in batches:
                out[rows] = self.runtime.run(feeds)
        return Embeddings(np.ascontiguousarray(out), truncated)

    def _feeds(self, tokens: TokenizedTexts, rows: list[int]) -> Feeds:
        return padded_feeds(tokens, rows, self.tokenizer, token_types=self._types)


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise InputError("encode takes a list of texts, not one string: wrap it as [text]")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text #{i} is {type(text).__name__}, not str")


def _to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _display_name(model: str | os.PathLike[str] | None, path: Path) -> str:
    if model is not None and not Path(model).expanduser().is_dir():
        return str(model)  # a hub id
    try:
        if path == default_model_path().resolve():
            return DEFAULT_MODEL_NAME
    except MissingDependencyError:
        pass
    return path.name
