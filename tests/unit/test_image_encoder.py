"""ImageEncoder on a tiny random CLIP in both layouts, against sentence-transformers."""

from __future__ import annotations

import json
import string
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PIL")


def _tiny_clip(tmp: Path) -> Path:
    """A random CLIP (tiny towers, a character vocabulary) saved in the Hugging Face layout."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    chars = list(string.ascii_lowercase)
    tokens = ["<|startoftext|>", "<|endoftext|>", *chars, *[c + "</w>" for c in chars]]
    (tmp / "vocab.json").write_text(json.dumps({t: i for i, t in enumerate(tokens)}))
    (tmp / "merges.txt").write_text("#version: 0.2\n")
    tok = CLIPTokenizer(str(tmp / "vocab.json"), str(tmp / "merges.txt"))
    size = {"shortest_edge": 32}
    crop = {"height": 32, "width": 32}
    proc = CLIPProcessor(CLIPImageProcessor(size=size, crop_size=crop), tok)  # type: ignore[no-untyped-call]
    tower = {"hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1}
    cfg = CLIPConfig(
        text_config={**tower, "num_attention_heads": 2, "vocab_size": len(tokens)},
        vision_config={**tower, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )
    hf = tmp / "hf"
    CLIPModel(cfg).save_pretrained(hf)
    proc.save_pretrained(hf)
    return hf


def _images() -> list[Any]:
    from PIL import Image

    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (40, 48, 3), dtype=np.uint8)) for _ in range(3)]


def test_both_layouts_match_sentence_transformers(tmp_path: Path) -> None:
    from sentence_transformers import SentenceTransformer

    try:
        from sentence_transformers.sentence_transformer.modules import CLIPModel as STClip
    except ImportError:  # sentence-transformers before 6
        from sentence_transformers.models import CLIPModel as STClip

    from es_semantic.encoding.images import ImageEncoder

    hf = _tiny_clip(tmp_path)
    st_dir = tmp_path / "st"
    SentenceTransformer(modules=[STClip(str(hf))]).save(str(st_dir))
    st = SentenceTransformer(str(st_dir), device="cpu")
    texts, images = ["a red dog", "cat"], _images()
    want_t = st.encode(texts, normalize_embeddings=True)
    want_i = st.encode(images, normalize_embeddings=True)
    for folder in (hf, st_dir):
        enc = ImageEncoder(folder)
        np.testing.assert_allclose(enc.encode_texts(texts), want_t, atol=1e-5)
        np.testing.assert_allclose(enc.encode_images(images), want_i, atol=1e-5)
        assert enc.multimodal and enc.dim == 8


def test_a_folder_that_is_not_clip_is_named(tmp_path: Path) -> None:
    from es_semantic.encoding.images import clip_folder

    (tmp_path / "modules.json").write_text(json.dumps([{"type": "x.Pooling", "path": "1"}]))
    with pytest.raises(ValueError, match="no CLIPModel module"):
        clip_folder(tmp_path)
