"""A tiny random CLIP (the Hugging Face layout) and generated images, for the image tests."""

from __future__ import annotations

import io
import json
import string
from pathlib import Path
from typing import Any


def tiny_clip(tmp: Path, *, seed: int = 0) -> Path:
    """A random CLIP (tiny towers, a character vocabulary) saved in the Hugging Face layout."""
    import torch
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPProcessor, CLIPTokenizer

    tmp.mkdir(parents=True, exist_ok=True)
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
        # the text tower pools at the end-of-text token: its id in this vocabulary
        text_config={
            **tower,
            "num_attention_heads": 2,
            "vocab_size": len(tokens),
            "bos_token_id": 0,
            "eos_token_id": 1,
            "pad_token_id": 1,
        },
        vision_config={**tower, "num_attention_heads": 2, "image_size": 32, "patch_size": 8},
        projection_dim=8,
    )
    torch.manual_seed(seed)
    hf = tmp / "hf"
    CLIPModel(cfg).save_pretrained(hf)
    proc.save_pretrained(hf)
    return hf


def image_bytes(colour: str | tuple[int, int, int], *, size: tuple[int, int] = (40, 36),
                fmt: str = "PNG", shape: str = "square") -> bytes:  # fmt: skip
    """A generated image's file bytes: ``colour`` filling the frame, or a shape on white."""
    from PIL import Image, ImageDraw

    if shape == "square":
        image = Image.new("RGB", size, colour)
    else:
        image = Image.new("RGB", size, "white")
        ImageDraw.Draw(image).ellipse((4, 4, size[0] - 4, size[1] - 4), fill=colour)
    out = io.BytesIO()
    image.save(out, fmt)
    return out.getvalue()


def write_image(path: Path, colour: Any, **options: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".webp": "WEBP", ".gif": "GIF", ".bmp": "BMP"}
    path.write_bytes(image_bytes(colour, fmt=fmt.get(path.suffix.lower(), "PNG"), **options))
    return path


def train_tiny_clip(folder: Path, batches: list[list[tuple[bytes, str]]], out: Path, *,
                    steps: int = 60, lr: float = 1e-2, seed: int = 0) -> Path:  # fmt: skip
    """``folder``'s CLIP trained for ``steps`` steps with CLIP's own contrastive loss, cycling
    through ``batches`` of (image bytes, caption) pairs (distinct captions in a batch), saved
    (model and processor) in ``out``."""
    import torch
    from PIL import Image
    from transformers import CLIPModel, CLIPProcessor

    torch.manual_seed(seed)
    model = CLIPModel.from_pretrained(str(folder))
    processor = CLIPProcessor.from_pretrained(str(folder))
    inputs = [
        processor(text=[c for _, c in pairs], return_tensors="pt", padding=True,
                  images=[Image.open(io.BytesIO(d)).convert("RGB") for d, _ in pairs])
        for pairs in batches
    ]  # fmt: skip
    optimiser = torch.optim.AdamW(model.parameters(), lr=lr)
    model.train()
    for step in range(steps):
        loss = model(**inputs[step % len(inputs)], return_loss=True).loss
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    model.save_pretrained(out)
    processor.save_pretrained(out)
    return out
