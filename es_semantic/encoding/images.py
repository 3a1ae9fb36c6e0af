"""ImageEncoder: a CLIP folder (sentence-transformers or Hugging Face layout) -> texts and images
in one L2-normalised float32 space."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from es_semantic.errors import MissingDependencyError


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError("pillow", "images", "image encoding") from exc
    return Image


def clip_folder(path: str | Path) -> Path:
    """The folder holding the CLIP weights: this one, or the one its modules.json names."""
    root = Path(path)
    modules = root / "modules.json"
    if modules.is_file():
        for module in json.loads(modules.read_text(encoding="utf-8")):
            if str(module.get("type", "")).endswith("CLIPModel"):
                return root / str(module.get("path", ""))
        raise ValueError(f"{root}: modules.json has no CLIPModel module; pass a CLIP model folder")
    if not (root / "config.json").is_file():
        raise ValueError(f"{root}: no config.json or modules.json; pass a CLIP model folder")
    return root


class ImageEncoder:
    """Encode texts and images into one normalised space with a CLIP model (CPU, float32)."""

    multimodal = True

    def __init__(self, model: str | Path, *, batch_size: int = 32) -> None:
        from transformers import CLIPModel, CLIPProcessor

        _pil()
        folder = clip_folder(model)
        self.model_name = str(model)
        self.precision = "float32"
        self.batch_size = batch_size
        self._model = CLIPModel.from_pretrained(str(folder))
        self._model.eval()  # type: ignore[no-untyped-call]
        self._processor = CLIPProcessor.from_pretrained(str(folder))
        self.dim = int(self._model.config.projection_dim or 0)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text vectors, float32 (n, dim)."""
        return self._run(list(texts), text=True)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """L2-normalised image vectors for PIL images, float32 (n, dim)."""
        return self._run([im.convert("RGB") for im in images], text=False)

    def _run(self, items: list[Any], *, text: bool) -> np.ndarray:
        import torch

        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for start in range(0, len(items), self.batch_size):
            part = items[start : start + self.batch_size]
            with torch.inference_mode():
                if text:
                    inputs = self._processor.tokenizer(
                        part, padding=True, truncation=True, return_tensors="pt"
                    )
                    feats = self._model.get_text_features(**inputs)
                else:
                    inputs = self._processor.image_processor(part, return_tensors="pt")
                    feats = self._model.get_image_features(**inputs)
            feats = getattr(feats, "pooler_output", feats)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
            out[start : start + len(part)] = feats.numpy()
        return out
