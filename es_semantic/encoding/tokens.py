"""Tokenisation shared by the encoder and the cross-encoder: truncate, count, pad."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from es_semantic.errors import EncoderError


@dataclass(frozen=True)
class TokenizedTexts:
    """Unpadded token ids per text, and which texts were cut at max_length."""

    input_ids: list[list[int]]
    token_type_ids: list[list[int]] | None
    truncated: npt.NDArray[np.bool_]

    @property
    def lengths(self) -> list[int]:
        return [len(ids) for ids in self.input_ids]


def load_tokenizer(path: Path) -> Any:
    """The folder's tokenizer (a fast one where a vocab allows it, e.g. BERT ``vocab.txt``)."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(path))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise EncoderError(f"cannot load the tokenizer in {path}: {exc}") from None


def tokenize(
    tokenizer: Any,
    texts: Sequence[str],
    max_length: int,
    pairs: Sequence[str] | None = None,
) -> TokenizedTexts:
    """Tokenise with truncation; with ``pairs`` the second segment is truncated first."""
    encoded = tokenizer(
        list(texts),
        list(pairs) if pairs is not None else None,
        truncation="only_second" if pairs is not None else True,
        max_length=max_length,
        padding=False,
        return_attention_mask=False,
        return_token_type_ids=pairs is not None,
    )
    ids: list[list[int]] = encoded["input_ids"]
    encodings = getattr(encoded, "encodings", None)
    if encodings:  # fast tokenizer: exact, the overflow is kept aside
        truncated = np.array([bool(e.overflowing) for e in encodings], dtype=bool)
    else:  # slow tokenizer: a text that fills the window was (most likely) cut
        truncated = np.array([len(row) >= max_length for row in ids], dtype=bool)
    type_ids = encoded.get("token_type_ids") if pairs is not None else None
    return TokenizedTexts(ids, type_ids, truncated.reshape(len(ids)))


def pad_arrays(
    tokens: TokenizedTexts, rows: list[int], tokenizer: Any
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64] | None]:
    """Dynamic padding of ``rows`` to their longest member, on the tokenizer's padding side.

    Returns int64 ids, attention mask and (for pairs) token type ids."""
    width = max(len(tokens.input_ids[r]) for r in rows)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    ids = np.full((len(rows), width), pad_id, dtype=np.int64)
    mask = np.zeros((len(rows), width), dtype=np.int64)
    types = np.zeros((len(rows), width), dtype=np.int64) if tokens.token_type_ids else None
    left = getattr(tokenizer, "padding_side", "right") == "left"
    for j, r in enumerate(rows):
        row = tokens.input_ids[r]
        span = slice(width - len(row), width) if left else slice(0, len(row))
        ids[j, span] = row
        mask[j, span] = 1
        if types is not None and tokens.token_type_ids is not None:
            types[j, span] = tokens.token_type_ids[r]
    return ids, mask, types


def padded_feeds(
    tokens: TokenizedTexts, rows: list[int], tokenizer: Any, *, token_types: bool
) -> dict[str, npt.NDArray[np.int64]]:
    """A runtime's inputs for ``rows``: ids and mask, and with ``token_types`` the pair's
    segment ids (zeros for single texts)."""
    ids, mask, types = pad_arrays(tokens, rows, tokenizer)
    feeds = {"input_ids": ids, "attention_mask": mask}
    if token_types:
        feeds["token_type_ids"] = types if types is not None else np.zeros_like(ids)
    return feeds


def pad_batch(
    tokens: TokenizedTexts, rows: list[int], tokenizer: Any, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """``pad_arrays`` as torch tensors on ``device``."""
    ids, mask, types = pad_arrays(tokens, rows, tokenizer)
    return (
        torch.from_numpy(ids).to(device),
        torch.from_numpy(mask).to(device),
        None if types is None else torch.from_numpy(types).to(device),
    )


# Scripts written without spaces: every character is its own piece for the slow-tokenizer path.
_PIECES = re.compile(r"[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uac00-\ud7af\uf900-\ufaff]|[^\s]+")


def token_spans(tokenizer: Any, texts: Sequence[str]) -> list[list[tuple[int, int]]]:
    """Character spans of each text's tokens (no special tokens, no truncation).

    Fast tokenizers give exact offsets; slow ones are approximated piece by piece (words, and
    single characters of CJK scripts), each piece's tokens sharing its span.
    """
    if not texts:
        return []
    # long texts are the point here: silence "sequence length is longer than the maximum"
    warned = getattr(tokenizer, "deprecation_warnings", None)
    if isinstance(warned, dict):
        warned["sequence-length-is-longer-than-the-specified-maximum"] = True
    if getattr(tokenizer, "is_fast", False):
        encoded = tokenizer(
            list(texts), add_special_tokens=False, return_offsets_mapping=True, truncation=False
        )
        return [
            [(int(s), int(e)) for s, e in offsets if e > s] for offsets in encoded["offset_mapping"]
        ]
    out: list[list[tuple[int, int]]] = []
    for text in texts:
        pieces = [(m.start(), m.end()) for m in _PIECES.finditer(text)]
        if not pieces:
            out.append([])
            continue
        counts = tokenizer([text[s:e] for s, e in pieces], add_special_tokens=False)["input_ids"]
        out.append([span for span, ids in zip(pieces, counts, strict=True) for _ in ids])
    return out
