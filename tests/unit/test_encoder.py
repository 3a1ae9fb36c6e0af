import json

import numpy as np
import pytest
import torch

from es_semantic import Encoder
from es_semantic.encoding.pooling import POOLING_MODES
from es_semantic.errors import ConfigError, EncoderError, InputError
from tests.tiny_models import build_tiny_bert

MIXED = [
    "the cat",
    "a dog and a bird in the city with music and film and the river " * 3,
    "search",
    "what is a dense vector index for elastic search",
    "",
    "python java rust go code test " * 8,
]


def test_dim_without_encoding(tiny_bert_dir):
    enc = Encoder(tiny_bert_dir)
    assert enc.dim == 32
    assert enc.calls == 0


def test_output_shape_dtype_contiguous(tiny_bert_dir):
    vectors = Encoder(tiny_bert_dir).encode_documents(MIXED)
    assert vectors.shape == (len(MIXED), 32)
    assert vectors.dtype == np.float32
    assert vectors.flags["C_CONTIGUOUS"]
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_empty_input(tiny_bert_dir):
    assert Encoder(tiny_bert_dir).encode_documents([]).shape == (0, 32)


def test_order_preserved_and_batch_size_invariant(tiny_bert_dir):
    one = Encoder(tiny_bert_dir, batch_size=1).encode_documents(MIXED)
    many = Encoder(tiny_bert_dir, batch_size=64).encode_documents(MIXED)
    assert np.abs(one - many).max() <= 1e-5
    # each row equals the text encoded alone: order restored after length sorting
    enc = Encoder(tiny_bert_dir)
    for i, text in enumerate(MIXED):
        assert np.abs(enc.encode_documents([text])[0] - many[i]).max() <= 1e-5


def test_token_budget_invariant(tiny_bert_dir):
    small = Encoder(tiny_bert_dir, max_batch_tokens=40).encode_documents(MIXED)
    large = Encoder(tiny_bert_dir).encode_documents(MIXED)
    assert np.abs(small - large).max() <= 1e-5


@pytest.mark.parametrize("mode", POOLING_MODES)
def test_every_pooling_mode_matches_manual(tiny_bert_dir, mode):
    from transformers import AutoModel, AutoTokenizer

    enc = Encoder(tiny_bert_dir, pooling=mode, normalize=False, precision="float32")
    text = "the cat and the dog"
    got = enc.encode_documents([text])[0]
    tok = AutoTokenizer.from_pretrained(str(tiny_bert_dir))
    model = AutoModel.from_pretrained(str(tiny_bert_dir)).eval()
    batch = tok([text], return_tensors="pt")
    with torch.no_grad():
        out = model(**batch, output_hidden_states=True)
    h = out.last_hidden_state[0]
    expected = {
        "cls": h[0],
        "mean": h.mean(0),
        "max": h.max(0).values,
        "lasttoken": h[-1],
        "mean_first_last": ((out.hidden_states[0][0] + h) / 2).mean(0),
    }[mode]
    assert np.abs(got - expected.numpy()).max() <= 1e-5


def test_normalize_off_and_on(tiny_bert_dir):
    raw = Encoder(tiny_bert_dir, normalize=False).encode_documents(["the cat"])
    unit = Encoder(tiny_bert_dir, normalize=True).encode_documents(["the cat"])
    assert not np.isclose(np.linalg.norm(raw), 1.0)
    assert np.allclose(unit, raw / np.linalg.norm(raw), atol=1e-6)


def test_sentence_transformers_folder_is_read(tiny_st_dir):
    enc = Encoder(tiny_st_dir)
    cfg = enc.config
    assert (cfg.pooling, cfg.normalize, cfg.max_length) == ("mean", True, 64)
    assert (cfg.query_prefix, cfg.document_prefix) == ("query: ", "passage: ")
    q = enc.encode_queries(["the cat"])
    d = enc.encode_documents(["the cat"])
    manual = Encoder(tiny_st_dir, query_prefix="", document_prefix="")
    assert np.abs(q - manual.encode_documents(["query: the cat"])).max() <= 1e-5
    assert np.abs(d - manual.encode_documents(["passage: the cat"])).max() <= 1e-5


def test_sentence_transformers_pooling_config(tmp_path):
    from tests.tiny_models import make_sentence_transformers

    folder = make_sentence_transformers(
        build_tiny_bert(tmp_path / "m"), pooling="cls", normalize=False
    )
    cfg = Encoder(folder).config
    assert (cfg.pooling, cfg.normalize) == ("cls", False)


def test_plain_folder_defaults_and_family_presets(tiny_bert_dir, tmp_path):
    cfg = Encoder(tiny_bert_dir).config
    assert (cfg.pooling, cfg.normalize, cfg.query_prefix) == ("mean", True, "")
    assert cfg.max_length == 128  # the model's position limit
    e5 = build_tiny_bert(tmp_path / "multilingual-e5-small")
    cfg = Encoder(e5).config
    assert (cfg.pooling, cfg.query_prefix, cfg.document_prefix) == ("mean", "query: ", "passage: ")
    bge = build_tiny_bert(tmp_path / "bge-small-zh-v1.5")
    cfg = Encoder(bge).config
    assert cfg.pooling == "cls" and cfg.query_prefix.startswith("为这个句子")


def test_truncation_is_counted(tiny_bert_dir):
    enc = Encoder(tiny_bert_dir, max_length=8)
    out = enc.embed(["the cat", "the cat and the dog and the bird in the city"])
    assert out.truncated.tolist() == [False, True]
    assert out.truncated_count == 1


def test_chinese_vocab_only_folder(tmp_path):
    folder = build_tiny_bert(tmp_path / "chinese-bert", fast_tokenizer=False)
    assert not (folder / "tokenizer.json").exists()
    enc = Encoder(folder)
    vectors = enc.encode_documents(["中文搜索引擎", "向量数据库检索", "今天天气好"])
    assert vectors.shape == (3, 32)
    assert enc.count_tokens(["中文搜索"]) == [6]  # [CLS] + 4 characters + [SEP]
    assert not np.allclose(vectors[0], vectors[1])


def test_bad_arguments_name_the_value(tiny_bert_dir, tmp_path):
    with pytest.raises(ConfigError, match="pooling='avg' is not one of cls, mean"):
        Encoder(tiny_bert_dir, pooling="avg")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="dtype='fp8'"):
        Encoder(tiny_bert_dir, dtype="fp8")
    with pytest.raises(EncoderError, match="pass a folder"):
        Encoder(tmp_path / "no-such-model")
    with pytest.raises(InputError, match="not one string"):
        Encoder(tiny_bert_dir).encode_documents("the cat")  # type: ignore[arg-type]


def test_unsupported_module_is_refused(tmp_path):
    folder = build_tiny_bert(tmp_path / "dense")
    (folder / "modules.json").write_text(
        json.dumps([{"idx": 0, "path": "2_Dense", "type": "sentence_transformers.models.Dense"}])
    )
    with pytest.raises(EncoderError, match="Dense module"):
        Encoder(folder)


def test_bf16_runs_close_to_fp32(tiny_bert_dir):
    """torch float32 against torch bfloat16 asked by its older name, dtype (the bound that bf16's
    rounding gives is checked in test_backends.py)."""
    fp32 = Encoder(tiny_bert_dir, backend="torch", precision="float32").encode_documents(MIXED[:3])
    model = Encoder(tiny_bert_dir, backend="torch", dtype="bfloat16")
    assert model.precision == "bfloat16"
    bf16 = model.encode_documents(MIXED[:3])
    assert bf16.dtype == np.float32
    cos = (fp32 * bf16).sum(axis=1)
    assert cos.min() > 0.98


def test_int8_fast_path_quantises_feed_forward_only(tiny_bert_dir):
    from torch.ao.nn.quantized.dynamic import Linear as DynamicQuantLinear

    fp32 = Encoder(tiny_bert_dir)
    fast = Encoder(tiny_bert_dir, quantize="int8")
    kinds = {name: type(m) for name, m in fast.model.named_modules()}
    assert kinds["encoder.layer.0.intermediate.dense"] is DynamicQuantLinear
    assert kinds["encoder.layer.0.attention.self.query"] is torch.nn.Linear
    a, b = fp32.encode_documents(MIXED), fast.encode_documents(MIXED)
    assert float((a * b).sum(axis=1).min()) > 0.98
    with pytest.raises(ConfigError, match="quantize='int4'"):
        Encoder(tiny_bert_dir, quantize="int4")
