"""Encoder: a Hugging Face model folder -> L2-normalised float32 sentence vectors."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import numpy.typing as npt
import torch

from es_semantic.config import EncoderConfig, PoolingMode
from es_semantic.encoding.batching import plan_batches
from es_semantic.encoding.device import pick_device, pick_dtype
from es_semantic.encoding.model_folder import (
    default_model_path,
    model_fingerprint,
    read_model_spec,
    resolve_model_path,
)
from es_semantic.encoding.pooling import pool
from es_semantic.encoding.quantize import quantize_model
from es_semantic.encoding.tokens import (
    TokenizedTexts,
    load_tokenizer,
    pad_batch,
    token_spans,
    tokenize,
)
from es_semantic.errors import ConfigError, EncoderError, InputError, MissingDependencyError

TextKind = Literal["query", "document"]
FloatArray = npt.NDArray[np.float32]
DEFAULT_MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"


@dataclass(frozen=True)
class Embeddings:
    """Vectors with what happened on the way: which texts were cut at ``max_length``."""

    vectors: FloatArray
    truncated: npt.NDArray[np.bool_]

    @property
    def truncated_count(self) -> int:
        return int(self.truncated.sum())


class Encoder:
    """Sentence embeddings from a local model folder (sentence-transformers layout or plain).

    >>> enc = Encoder("/models/all-MiniLM-L6-v2")          # doctest: +SKIP
    >>> enc.encode_queries(["what is bm25?"]).shape        # doctest: +SKIP
    (1, 384)
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | None = None,
        pooling: PoolingMode | None = None,
        normalize: bool | None = None,
        max_length: int | None = None,
        device: str | None = None,
        *,
        dtype: str | None = None,
        quantize: str = "none",
        query_prefix: str | None = None,
        document_prefix: str | None = None,
        batch_size: int = 32,
        max_batch_tokens: int = 4096,
    ) -> None:
        path = resolve_model_path(model) if model is not None else default_model_path()
        spec = read_model_spec(path, name=str(model) if model is not None else None)
        if batch_size < 1 or max_batch_tokens < 1:
            raise ConfigError("batch_size and max_batch_tokens must be >= 1")
        self.device = pick_device(device)
        self.torch_dtype = pick_dtype(dtype, self.device)
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.tokenizer = load_tokenizer(path)
        self.model = quantize_model(
            _load_model(path, self.device, self.torch_dtype), quantize, self.device
        )
        self.quantize = quantize
        self.config = EncoderConfig(
            model_name=_display_name(model, path),
            model_path=str(path),
            fingerprint=model_fingerprint(path),
            pooling=pooling or spec.pooling,
            normalize=spec.normalize if normalize is None else normalize,
            max_length=min(max_length or spec.max_length, _position_limit(self.model)),
            query_prefix=spec.query_prefix if query_prefix is None else query_prefix,
            document_prefix=spec.document_prefix if document_prefix is None else document_prefix,
            dim=int(self.model.config.hidden_size),
        )
        self._lock = threading.Lock()  # one forward pass at a time: threads share the cores
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
        tokens = tokenize(self.tokenizer, [prefix + t for t in texts], self.config.max_length)
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        batches = plan_batches(
            tokens.lengths, max_batch=self.batch_size, max_tokens=self.max_batch_tokens
        )
        with self._lock, torch.inference_mode():
            self.calls += 1
            for rows in batches:
                out[rows] = self._forward(tokens, rows)
        return Embeddings(np.ascontiguousarray(out), tokens.truncated)

    def _forward(self, tokens: TokenizedTexts, rows: list[int]) -> FloatArray:
        ids, mask, _ = pad_batch(tokens, rows, self.tokenizer, self.device)
        wants_layers = self.config.pooling == "mean_first_last"
        output = self.model(input_ids=ids, attention_mask=mask, output_hidden_states=wants_layers)
        pooled = pool(
            self.config.pooling,
            output.last_hidden_state,
            mask,
            output.hidden_states if wants_layers else None,
        ).float()
        if self.config.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return cast(FloatArray, pooled.cpu().numpy())


def _check_texts(texts: Sequence[str]) -> None:
    if isinstance(texts, str):
        raise InputError("encode takes a list of texts, not one string: wrap it as [text]")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise InputError(f"text #{i} is {type(text).__name__}, not str")


def _load_model(path: Path, device: torch.device, dtype: torch.dtype) -> Any:
    from transformers import AutoModel

    try:
        model = AutoModel.from_pretrained(str(path))
    except (OSError, ValueError, KeyError) as exc:
        raise EncoderError(f"cannot load the model in {path}: {exc}") from None
    return model.to(device=device, dtype=dtype).eval()


def _position_limit(model: Any) -> int:
    limit = getattr(model.config, "max_position_embeddings", None)
    if not isinstance(limit, int) or limit <= 0:
        return 1_000_000
    if getattr(model.config, "model_type", "") in {"roberta", "xlm-roberta", "camembert"}:
        return limit - 2
    return limit


def _display_name(model: str | os.PathLike[str] | None, path: Path) -> str:
    if model is not None and not Path(model).expanduser().is_dir():
        return str(model)  # a hub id
    try:
        if path == default_model_path().resolve():
            return DEFAULT_MODEL_NAME
    except MissingDependencyError:
        pass
    return path.name
