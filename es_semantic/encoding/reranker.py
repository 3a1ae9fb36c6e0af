"""CrossEncoder: score (query, passage) pairs with a sequence-classification model."""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import torch

from es_semantic.encoding.batching import plan_batches
from es_semantic.encoding.device import pick_device, pick_dtype
from es_semantic.encoding.model_folder import model_fingerprint, resolve_model_path
from es_semantic.encoding.tokens import TokenizedTexts, load_tokenizer, pad_batch, tokenize
from es_semantic.errors import ConfigError, EncoderError, InputError

FloatArray = npt.NDArray[np.float32]


class CrossEncoder:
    """Relevance scores for (query, passage) pairs, higher is better.

    One-label heads give their logit (or its sigmoid with ``activation="sigmoid"``); two-label
    heads give the "relevant" class: logit difference raw, softmax probability with sigmoid.

    >>> CrossEncoder("/models/ms-marco-MiniLM-L6").score("q", ["a", "b"])  # doctest: +SKIP
    array([ 3.1, -7.2], dtype=float32)
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        max_length: int = 512,
        device: str | None = None,
        dtype: str | None = None,
        activation: str = "none",
        batch_size: int = 32,
        max_batch_tokens: int = 16_384,
    ) -> None:
        from transformers import AutoModelForSequenceClassification

        if activation not in ("none", "sigmoid"):
            raise ConfigError(f"activation={activation!r} is not one of none, sigmoid")
        path = resolve_model_path(model)
        self.device = pick_device(device)
        self.tokenizer = load_tokenizer(path)
        try:
            loaded = AutoModelForSequenceClassification.from_pretrained(str(path))
        except (OSError, ValueError, KeyError) as exc:
            raise EncoderError(f"cannot load the cross-encoder in {path}: {exc}") from None
        self.model: Any = loaded.to(self.device, pick_dtype(dtype, self.device)).eval()
        self.num_labels = int(self.model.config.num_labels)
        if self.num_labels not in (1, 2):
            raise EncoderError(
                f"{path} has {self.num_labels} labels; a cross-encoder needs a 1- or 2-label head"
            )
        limit = int(getattr(self.model.config, "max_position_embeddings", max_length))
        self.max_length = min(max_length, limit)
        self.activation = activation
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.name = path.name
        self.fingerprint = model_fingerprint(path)
        self._lock = threading.Lock()

    def score(self, query: str, passages: Sequence[str]) -> FloatArray:
        """One score per passage, in input order."""
        if not isinstance(query, str):
            raise InputError(f"query is {type(query).__name__}, not str")
        return self.score_pairs([(query, p) for p in passages])

    def score_many(
        self, queries: Sequence[str], passages: Sequence[Sequence[str]]
    ) -> list[FloatArray]:
        """Batched form: ``passages[i]`` scored against ``queries[i]``, one sorted pass."""
        if len(queries) != len(passages):
            raise InputError(f"{len(queries)} queries but {len(passages)} passage lists")
        pairs = [(q, p) for q, group in zip(queries, passages, strict=True) for p in group]
        flat = self.score_pairs(pairs)
        bounds = np.cumsum([0, *(len(g) for g in passages)])
        return [flat[bounds[i] : bounds[i + 1]] for i in range(len(queries))]

    def score_pairs(self, pairs: Sequence[tuple[str, str]]) -> FloatArray:
        """Scores of (query, passage) pairs, float32 (n,)."""
        for i, pair in enumerate(pairs):
            if not (isinstance(pair[0], str) and isinstance(pair[1], str)):
                raise InputError(f"pair #{i} must be two strings")
        out = np.empty(len(pairs), dtype=np.float32)
        if not pairs:
            return out
        tokens = tokenize(
            self.tokenizer, [q for q, _ in pairs], self.max_length, pairs=[p for _, p in pairs]
        )
        batches = plan_batches(
            tokens.lengths, max_batch=self.batch_size, max_tokens=self.max_batch_tokens
        )
        with self._lock, torch.inference_mode():
            for rows in batches:
                out[rows] = self._forward(tokens, rows)
        return out

    def _forward(self, tokens: TokenizedTexts, rows: list[int]) -> FloatArray:
        ids, mask, types = pad_batch(tokens, rows, self.tokenizer, self.device)
        extra = {"token_type_ids": types} if types is not None else {}
        logits = self.model(input_ids=ids, attention_mask=mask, **extra).logits.float()
        if self.num_labels == 1:
            scores = logits[:, 0]
            if self.activation == "sigmoid":
                scores = torch.sigmoid(scores)
        elif self.activation == "sigmoid":
            scores = torch.softmax(logits, dim=1)[:, 1]
        else:
            scores = logits[:, 1] - logits[:, 0]
        return cast(FloatArray, scores.cpu().numpy())
