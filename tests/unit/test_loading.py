"""One loading path for Encoder and CrossEncoder: the same window on the same model.

RoBERTa-style models number positions from ``padding_idx + 1``, so a model with
``max_position_embeddings`` rows holds ``max_position_embeddings - padding_idx - 1`` tokens.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from es_semantic import CrossEncoder, Encoder
from tests.tiny_models import WORDS

POSITIONS = 34  # position rows of the tiny RoBERTa: 32 tokens once the padding offset is taken
LONG = "the dog and the cat in the city " * 12  # ~100 tokens, far past the window


def build_tiny_roberta(folder: Path, *, scorer: bool) -> Path:
    """A RoBERTa folder (padding id 1, as in RoBERTa/XLM-R) with a word-piece vocabulary."""
    from transformers import (
        BertTokenizerFast,
        RobertaConfig,
        RobertaForSequenceClassification,
        RobertaModel,
    )

    folder.mkdir(parents=True, exist_ok=True)
    vocab = ["[CLS]", "[PAD]", "[SEP]", "[UNK]", "[MASK]", *dict.fromkeys(WORDS)]
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(vocab)})
    assert tokenizer.pad_token_id == 1
    config = RobertaConfig(
        vocab_size=len(vocab), hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=POSITIONS, pad_token_id=1,
        type_vocab_size=2, num_labels=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = RobertaForSequenceClassification(config) if scorer else RobertaModel(config)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder


def test_position_limit_takes_the_padding_offset() -> None:
    from transformers import BertConfig, RobertaConfig, XLMRobertaConfig

    from es_semantic.encoding.model_folder import position_limit

    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert position_limit(XLMRobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=130, pad_token_id=0)) == 129
    assert position_limit(BertConfig(max_position_embeddings=512)) == 512


def test_cross_encoder_scores_inside_roberta_positions(tmp_path: Path) -> None:
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    folder = build_tiny_roberta(tmp_path / "tiny-roberta-scorer", scorer=True)
    ce = CrossEncoder(folder)
    assert ce.max_length == POSITIONS - 2
    got = ce.score("a cat", [LONG])
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    model = AutoModelForSequenceClassification.from_pretrained(str(folder)).eval()
    batch = tokenizer(["a cat"], [LONG], truncation="only_second", max_length=POSITIONS - 2,
                      return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        want = model(**batch).logits[:, 0].numpy()
    assert np.abs(got - want).max() <= 1e-5


def test_encoder_and_cross_encoder_share_the_window(tmp_path: Path) -> None:
    encoder = Encoder(build_tiny_roberta(tmp_path / "tiny-roberta", scorer=False))
    scorer = CrossEncoder(build_tiny_roberta(tmp_path / "tiny-roberta-scorer", scorer=True))
    assert encoder.config.max_length == scorer.max_length == POSITIONS - 2
    out = encoder.embed([LONG, "a cat"])
    assert out.truncated.tolist() == [True, False]
    assert out.vectors.shape == (2, 32) and np.isfinite(out.vectors).all()


def test_encoder_arguments_after_the_model_are_keywords(tiny_bert_dir: Path) -> None:
    with pytest.raises(TypeError):
        Encoder(tiny_bert_dir, "cls")  # type: ignore[misc]
    enc = Encoder(tiny_bert_dir, pooling="cls", normalize=False, max_length=16, device="cpu")
    assert (enc.config.pooling, enc.config.normalize, enc.config.max_length) == ("cls", False, 16)
