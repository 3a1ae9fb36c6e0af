"""ImageEncoder on a tiny random CLIP in both layouts, against sentence-transformers."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PIL")

from tests.tiny_clip import tiny_clip as _tiny_clip


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
        assert (enc.config.modality, enc.config.dim) == ("text+image", 8)
        np.testing.assert_allclose(enc.encode_queries(texts), want_t, atol=1e-5)
        files = []
        for image in images:
            out = io.BytesIO()
            image.save(out, "PNG")
            files.append(out.getvalue())
        np.testing.assert_allclose(enc.encode_image_bytes(files), want_i, atol=1e-5)


def test_a_folder_that_is_not_clip_is_named(tmp_path: Path) -> None:
    from es_semantic.encoding.images import clip_folder

    (tmp_path / "modules.json").write_text(json.dumps([{"type": "x.Pooling", "path": "1"}]))
    with pytest.raises(ValueError, match="no CLIPModel module"):
        clip_folder(tmp_path)


def test_every_bad_image_kind_is_named() -> None:
    from PIL import Image

    from es_semantic.encoding.images import ImageReadError, load_image
    from tests.tiny_clip import image_bytes

    good = image_bytes("red", fmt="JPEG")
    assert load_image(good, "ok.jpg").mode == "RGB"
    bomb = io.BytesIO()
    Image.new("1", (10_000, 9_000)).save(bomb, "PNG")  # 90M pixels: over Pillow's limit
    cases = {
        "empty file": b"",
        "unsupported format": b"<svg xmlns='http://www.w3.org/2000/svg'/>",
        "corrupt or truncated": good[: len(good) // 2],
        "decompression bomb": bomb.getvalue(),
    }
    for reason, data in cases.items():
        with pytest.raises(ImageReadError, match=f"^x.img: .*{reason}"):
            load_image(data, "x.img")


def test_a_text_longer_than_the_text_window_is_cut_to_it(tmp_path: Path) -> None:
    """CLIP's text tower has a fixed window (77 positions in real CLIPs): a longer text is cut
    to the window like a text model's, never an error, and its token count is reported so the
    service can refuse it when truncation is off."""
    from es_semantic.encoding.images import ImageEncoder

    enc = ImageEncoder(_tiny_clip(tmp_path))
    window = enc.config.max_length
    long_text = " ".join(["red"] * (window * 3))
    counts = enc.count_tokens([long_text, "red"])
    assert counts[0] > window >= counts[1]
    cut = enc.encode_texts([long_text])
    assert cut.shape == (1, enc.dim) and np.isfinite(cut).all()
