"""CrossEncoder: score (query, passage) pairs with a sequence-classification model."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from es_semantic.encoding.backend import precision_option
from es_semantic.encoding.export import Feeds
from es_semantic.encoding.heads import SCORE_HEAD, uses_token_types
from es_semantic.encoding.loading import load_model
from es_semantic.encoding.model_folder import resolve_model_path
from es_semantic.encoding.runtimes import Runtime
from es_semantic.encoding.token_batches import plan_batches
from es_semantic.encoding.tokens import TokenizedTexts, padded_feeds, tokenize
from es_semantic.errors import ConfigError, EncoderError, InputError

FloatArray = npt.NDArray[np.float32]


class CrossEncoder:
    """Relevance scores for (query, passage) pairs, higher is better.

    One-label heads give their logit (or its sigmoid with ``activation="sigmoid"``); two-label
    heads give the "relevant" class: logit difference raw, softmax probability with sigmoid.

    ``backend`` and ``precision`` (``dtype`` is its older name) as :class:`Encoder` takes them,
    ``auto`` by default; on a CPU with native bf16 the gate compares each label's scores over a
    fixed sample of pairs (their correlation to float32's). ``precision`` names what runs.

    >>> CrossEncoder("/models/ms-marco-MiniLM-L6").score("q", ["a", "b"])  # doctest: +SKIP
    array([ 3.1, -7.2], dtype=float32)
    """

    def __init__(
        self,
        model: str | os.PathLike[str],
        *,
        max_length: int = 512,
        device: str | None = None,
        precision: str | None = None,
        dtype: str | None = None,
        activation: str = "none",
        batch_size: int = 32,
        max_batch_tokens: int = 16_384,
        backend: str = "auto",
        cache_dir: str | os.PathLike[str] | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        if activation not in ("none", "sigmoid"):
            raise ConfigError(f"activation={activation!r} is not one of none, sigmoid")
        precision = precision_option(precision, dtype)
        path = resolve_model_path(model)
        loaded = load_model(path, SCORE_HEAD, backend, max_length=max_length, device=device,
                            precision=precision, cache_dir=cache_dir,
                            report=report)  # fmt: skip
        self.device, self.tokenizer = loaded.device, loaded.tokenizer
        self.fingerprint = loaded.fingerprint
        self.runtime: Runtime = loaded.runtime
        self.backend = loaded.choice.backend
        self.precision = loaded.precision  # what runs: float32, bfloat16 or float16
        self.num_labels = int(loaded.config.num_labels)
        if self.num_labels not in (1, 2):
            raise EncoderError(
                f"{path} has {self.num_labels} labels; a cross-encoder needs a 1- or 2-label head"
            )
        self.max_length = loaded.max_length
        self.activation = activation
        self.batch_size = batch_size
        self.max_batch_tokens = max_batch_tokens
        self.name = path.name
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

    def count_tokens(self, query: str, passages: Sequence[str]) -> list[int]:
        """Tokens of each (query, passage) pair, special tokens included, before truncation."""
        encoded = self.tokenizer([query] * len(passages), list(passages),
                                 add_special_tokens=True, truncation=False)  # fmt: skip
        return [len(ids) for ids in encoded["input_ids"]]

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
        with self._lock:
            for rows in batches:
                logits = self.runtime.run(_feeds(tokens, rows, self.tokenizer))
                out[rows] = scores_from_logits(logits, self.activation)
        return out


def scores_from_logits(logits: FloatArray, activation: str) -> FloatArray:
    """One-label heads: the logit (or its sigmoid); two-label: logit difference (or softmax)."""
    wide = logits.astype(np.float64)
    if wide.shape[1] == 1:
        scores = wide[:, 0]
        if activation == "sigmoid":
            scores = 1.0 / (1.0 + np.exp(-scores))
    elif activation == "sigmoid":
        scores = 1.0 / (1.0 + np.exp(wide[:, 0] - wide[:, 1]))  # softmax of label 1
    else:
        scores = wide[:, 1] - wide[:, 0]
    return scores.astype(np.float32)


def _feeds(tokens: TokenizedTexts, rows: list[int], tokenizer: Any) -> Feeds:
    return padded_feeds(tokens, rows, tokenizer, token_types=uses_token_types(tokenizer))
