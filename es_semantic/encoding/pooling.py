"""Pure pooling functions: token embeddings (batch, seq, dim) + attention mask -> (batch, dim)."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from es_semantic.config import POOLING_MODES, PoolingMode


def cls_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The first token's vector ([CLS] / <s>)."""
    return hidden[:, 0]


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean over the tokens the attention mask keeps (padding ignored)."""
    weights = mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * weights).sum(dim=1)
    counts = weights.sum(dim=1).clamp(min=1e-9)
    return summed / counts


def max_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Per-dimension maximum over kept tokens (padding set to the dtype's minimum)."""
    floor = torch.finfo(hidden.dtype).min
    masked = hidden.masked_fill(mask.unsqueeze(-1) == 0, floor)
    return masked.max(dim=1).values


def lasttoken_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The last kept token of each row, for left and right padding alike.

    Branch-free (the largest kept position), so an exported graph is right for every batch."""
    positions = torch.arange(mask.shape[1], device=mask.device).expand_as(mask)
    last = (positions * mask).argmax(dim=1)
    return hidden[torch.arange(hidden.shape[0], device=hidden.device), last]


def mean_first_last_pool(hidden_states: Sequence[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
    """Average the first (embedding output) and last hidden layers, then mean-pool.

    ``hidden_states`` is the model's ``output_hidden_states`` tuple; index 0 is the embedding
    layer, as in the BERT-whitening / text2vec "first-last-avg" recipe.
    """
    averaged = (hidden_states[0] + hidden_states[-1]) / 2
    return mean_pool(averaged, mask)


def pool(
    mode: PoolingMode,
    last_hidden: torch.Tensor,
    mask: torch.Tensor,
    hidden_states: Sequence[torch.Tensor] | None = None,
) -> torch.Tensor:
    """Dispatch on ``mode``; ``mean_first_last`` needs ``hidden_states``."""
    if mode == "cls":
        return cls_pool(last_hidden, mask)
    if mode == "mean":
        return mean_pool(last_hidden, mask)
    if mode == "max":
        return max_pool(last_hidden, mask)
    if mode == "lasttoken":
        return lasttoken_pool(last_hidden, mask)
    if mode == "mean_first_last":
        if hidden_states is None:
            raise ValueError("mean_first_last pooling needs the model's hidden_states")
        return mean_first_last_pool(hidden_states, mask)
    raise ValueError(f"pooling={mode!r} is not one of {', '.join(POOLING_MODES)}")
