"""Torch modules that end in what the caller wants: a pooled sentence vector, or a score.

The torch backend runs them directly, and the ONNX / OpenVINO exports trace these same modules,
so pooling, normalisation and score heads are one code path whatever the backend.
"""

from __future__ import annotations

from typing import Any, cast

import torch

from es_semantic.config import PoolingMode
from es_semantic.encoding.pooling import pool


class SentenceHead(torch.nn.Module):
    """transformer -> pooling -> (L2 normalisation) -> float32 (batch, dim)."""

    def __init__(self, model: Any, pooling: PoolingMode, normalize: bool) -> None:
        super().__init__()
        self.model, self.pooling, self.normalize = model, pooling, normalize

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        wants_layers = self.pooling == "mean_first_last"
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        output = self.model(input_ids=input_ids, attention_mask=attention_mask,
                            output_hidden_states=wants_layers, **extra)  # fmt: skip
        pooled = pool(self.pooling, output.last_hidden_state, attention_mask,
                      output.hidden_states if wants_layers else None).float()  # fmt: skip
        if self.normalize:
            pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
        return pooled


class ScoreHead(torch.nn.Module):
    """sequence-classification model -> float32 logits (batch, labels)."""

    def __init__(self, model: Any) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        token_type_ids: torch.Tensor | None = None,
    ) -> torch.Tensor:
        extra = {"token_type_ids": token_type_ids} if token_type_ids is not None else {}
        output = self.model(input_ids=input_ids, attention_mask=attention_mask, **extra)
        return cast(torch.Tensor, output.logits.float())


def uses_token_types(tokenizer: Any) -> bool:
    """Whether the model takes ``token_type_ids`` (BERT does, RoBERTa/XLM-R do not)."""
    return "token_type_ids" in getattr(tokenizer, "model_input_names", ())
