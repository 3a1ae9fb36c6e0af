"""Tiny random BERT folders built on the fly (no network), for tests that load real code paths."""

from __future__ import annotations

import json
from pathlib import Path

WORDS = (
    "the a of and to in is was for on with as by at from that this it be are an or not "
    "search engine elastic vector dense sparse query document passage index cluster node "
    "cat dog bird fish red green blue fast slow big small python java rust go code test "
    "apple banana cherry river mountain city music film book paper science health "
    "what how why who when where which . , ? ! - ' \" : ; ( )"
).split()
CJK = list("中文搜索引擎向量数据库检索模型语言天气今明好大小人")
SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


def write_vocab(folder: Path) -> Path:
    letters = [chr(c) for c in range(ord("a"), ord("z") + 1)]
    pieces = ["##" + ch for ch in letters]
    vocab = SPECIAL + WORDS + letters + pieces + CJK
    path = folder / "vocab.txt"
    path.write_text("\n".join(dict.fromkeys(vocab)) + "\n", encoding="utf-8")
    return path


def fast_bert_tokenizer(vocab: Path):  # type: ignore[no-untyped-def]
    """A fast BERT tokenizer over ``vocab``. transformers 5 builds its vocabulary from a
    ``vocab`` mapping (given only ``vocab_file`` it keeps the five special tokens and every word
    becomes [UNK]); transformers 4 reads ``vocab_file``."""
    from transformers import BertTokenizerFast

    words = vocab.read_text(encoding="utf-8").split()
    tokenizer = BertTokenizerFast(vocab={w: i for i, w in enumerate(words)})
    if len(tokenizer) < len(words):
        tokenizer = BertTokenizerFast(vocab_file=str(vocab))
    assert len(tokenizer) == len(words), "the tiny tokenizer lost its vocabulary"
    return tokenizer


def _config(vocab_size: int, **extra: object):  # type: ignore[no-untyped-def]
    from transformers import BertConfig

    return BertConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **extra,
    )


def build_tiny_bert(folder: Path, *, seed: int = 0, fast_tokenizer: bool = True) -> Path:
    """A plain BERT folder: config, weights, vocab (and tokenizer.json when ``fast_tokenizer``)."""
    import torch
    from transformers import BertModel

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder)
    torch.manual_seed(seed)
    size = len(vocab.read_text(encoding="utf-8").split())
    BertModel(_config(size)).save_pretrained(str(folder))
    if fast_tokenizer:
        fast_bert_tokenizer(vocab).save_pretrained(str(folder))
    else:  # like many Chinese BERT folders: vocab.txt only, model_type in config.json
        (folder / "tokenizer_config.json").write_text(
            json.dumps({"do_lower_case": True, "tokenizer_class": "BertTokenizer"})
        )
    return folder


def make_sentence_transformers(
    folder: Path,
    *,
    pooling: str = "mean",
    normalize: bool = True,
    prompts: dict[str, str] | None = None,
    max_seq_length: int = 64,
) -> Path:
    """Turn a BERT folder into a sentence-transformers folder."""
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {
            "idx": 1,
            "name": "1",
            "path": "1_Pooling",
            "type": "sentence_transformers.models.Pooling",
        },
    ]
    if normalize:
        modules.append(
            {
                "idx": 2,
                "name": "2",
                "path": "2_Normalize",
                "type": "sentence_transformers.models.Normalize",
            }
        )
        (folder / "2_Normalize").mkdir(exist_ok=True)
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_Pooling").mkdir(exist_ok=True)
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps(
            {
                "word_embedding_dimension": 32,
                "pooling_mode_cls_token": pooling == "cls",
                "pooling_mode_mean_tokens": pooling == "mean",
                "pooling_mode_max_tokens": pooling == "max",
                "pooling_mode_lasttoken": pooling == "lasttoken",
            }
        )
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": max_seq_length, "do_lower_case": False})
    )
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"prompts": prompts or {}})
    )
    return folder


def build_tiny_cross_encoder(folder: Path, *, num_labels: int = 1, seed: int = 0) -> Path:
    """A BertForSequenceClassification folder with 1 or 2 labels."""
    import torch
    from transformers import BertForSequenceClassification

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder)
    torch.manual_seed(seed)
    size = len(vocab.read_text(encoding="utf-8").split())
    BertForSequenceClassification(_config(size, num_labels=num_labels)).save_pretrained(str(folder))
    fast_bert_tokenizer(vocab).save_pretrained(str(folder))
    return folder
