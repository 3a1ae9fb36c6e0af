"""Torch modules that end in what the caller wants: a pooled sentence vector, or a score.

The torch backend runs them directly, and the ONNX / OpenVINO exports trace these same modules,
so pooling, normalisation and score heads are one code path whatever the backend. A
:class:`HeadSpec` says how to load a model for a head (``loading.load_model`` reads it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, cast

import torch

from es_semantic.config import PoolingMode
from es_semantic.encoding.pooling import pool


class _Head(torch.nn.Module):
    """transformer(ids, mask[, token types]) -> ``finish(output, mask)``."""

    wants_layers = False

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        extra: dict[str, Any] = (
            {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        )
        if self.wants_layers:
            extra["output_hidden_states"] = True
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return self.finish(output, attention_mask)

    def finish(self, output: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SentenceHead(_Head):
    """transformer -> pooling -> (L2 normalisation) -> float32 (batch, dim)."""

    def __init__(self, model: Any, pooling: PoolingMode, normalize: bool) -> None:
        super().__init__(model)
        self.pooling, self.normalize = pooling, normalize
        self.wants_layers = pooling == "mean_first_last"

    def finish(self, output: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        layers = output.hidden_states if self.wants_layers else None
        pooled = pool(self.pooling, output.last_hidden_state, attention_mask, layers).float()
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled


class ScoreHead(_Head):
    """sequence-classification model -> float32 logits (batch, labels)."""

    def finish(self, output: Any, attention_mask: torch.Tensor) -> torch.Tensor:
        return cast(torch.Tensor, output.logits.float())


@dataclass(frozen=True)
class HeadSpec:
    """A head to load: its cache key, the transformers class under it, the module around it,
    whether it reads (query, passage) pairs, and what to call it in errors."""

    key: str
    auto_class: str
    wrap: Callable[[Any], torch.nn.Module]
    pairs: bool = False
    what: str = "model"


def sentence_head(pooling: PoolingMode, normalize: bool) -> HeadSpec:
    """A sentence-vector head; exports are keyed by pooling and normalisation."""
    return HeadSpec(
        key=f"{pooling}-{'unit' if normalize else 'raw'}",
        auto_class="AutoModel",
        wrap=lambda model: SentenceHead(model, pooling, normalize),
    )


SCORE_HEAD = HeadSpec(
    key="score",
    auto_class="AutoModelForSequenceClassification",
    wrap=ScoreHead,
    pairs=True,
    what="cross-encoder",
)


def uses_token_types(tokenizer: Any) -> bool:
    """Whether the model takes ``token_type_ids`` (BERT does, RoBERTa/XLM-R do not)."""
    return "token_type_ids" in getattr(tokenizer, "model_input_names", ())
