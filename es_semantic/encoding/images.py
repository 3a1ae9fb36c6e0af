"""ImageEncoder: a CLIP folder (sentence-transformers or Hugging Face layout) -> texts and images
in one L2-normalised float32 space."""

from __future__ import annotations

import io
import json
import stat
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from es_semantic.config import EncoderConfig
from es_semantic.encoding.model_folder import model_fingerprint
from es_semantic.errors import MissingDependencyError

MAX_IMAGE_BYTES = 64 * 1024 * 1024  # an image file larger than this is refused unread
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff")
# CLIP's processor resizes the shortest edge to its size, then keeps the centre: a 1x100000
# image (a few hundred bytes, under any pixel cap) would be resized to 224 x 22 million first.
# Longer sides are cut to this many times the short one, around the centre the crop keeps.
MAX_ASPECT = 16


def _pil() -> Any:
    try:
        from PIL import Image
    except ImportError as exc:
        raise MissingDependencyError("pillow", "images", "image encoding") from exc
    return Image


class _Blob(NamedTuple):
    """An image file's bytes and the name its errors give."""

    data: bytes
    name: str


class ImageReadError(ValueError):
    """An image that cannot be used: the message says which and why (one line)."""


def load_image(data: bytes, name: str) -> Any:
    """``data`` decoded into an RGB PIL image, fully (a truncated file fails here, not later).

    Refused, with :class:`ImageReadError` naming ``name``: what :func:`check_image` refuses,
    and a truncated or corrupt body."""
    with _opened(data, name) as opened:
        opened.load()
        return opened.convert("RGB")


def check_image(data: bytes, name: str) -> None:
    """``data``'s header checked, its pixels left undecoded (they are decoded once, when the
    image is encoded): refused, with :class:`ImageReadError` naming ``name``, an empty file,
    bytes Pillow does not recognise, a decompression bomb (over Pillow's
    ``Image.MAX_IMAGE_PIXELS``: its warning is taken as a refusal too) or a corrupt header."""
    with _opened(data, name) as opened:
        if not opened.format or min(opened.size) < 1:
            raise ImageReadError(f"{name}: not an image Pillow can read (no size)")


@contextmanager
def _opened(data: bytes, name: str) -> Iterator[Any]:
    """``data`` opened by Pillow (its header read, its pixel count checked); what the caller
    does with it inside the block fails as a corrupt or truncated image."""
    image_mod = _pil()
    if not data:
        raise ImageReadError(f"{name}: empty file (0 bytes)")
    if len(data) > MAX_IMAGE_BYTES:
        raise ImageReadError(f"{name}: {len(data)} bytes, over the {MAX_IMAGE_BYTES} byte limit")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", image_mod.DecompressionBombWarning)
            with image_mod.open(io.BytesIO(data)) as opened:
                _check_pixels(image_mod, opened.size)  # the filter above is process-wide
                yield opened
    except ImageReadError:
        raise
    except (image_mod.DecompressionBombWarning, image_mod.DecompressionBombError) as exc:
        raise ImageReadError(
            f"{name}: refused as a decompression bomb ({exc}); Pillow's limit is "
            f"{image_mod.MAX_IMAGE_PIXELS} pixels"
        ) from None
    except image_mod.UnidentifiedImageError:
        raise ImageReadError(f"{name}: not an image Pillow can read (unsupported format)") from None
    except (OSError, ValueError, SyntaxError, EOFError) as exc:  # truncated, corrupt
        reason = str(exc).splitlines()[0][:200] if str(exc) else type(exc).__name__
        raise ImageReadError(f"{name}: corrupt or truncated image ({reason})") from None


def _check_pixels(image_mod: Any, size: tuple[int, int]) -> None:
    """Pillow's bomb limit compared directly: its warning becomes an error only through the
    warning filters, which another thread's ``catch_warnings`` may swap out meanwhile."""
    limit = image_mod.MAX_IMAGE_PIXELS
    if limit and size[0] * size[1] > limit:
        raise image_mod.DecompressionBombError(
            f"{size[0]}x{size[1]} = {size[0] * size[1]} pixels, over the limit of {limit}"
        )


def read_image_file(path: str | Path) -> bytes:
    """A file's bytes, refused (:class:`ImageReadError`) when missing, unreadable or too large."""
    try:
        info = Path(path).stat()
        if stat.S_ISDIR(info.st_mode):
            raise ImageReadError(f"{path}: a folder, not an image file")
        if not stat.S_ISREG(info.st_mode):  # a FIFO blocks, a device never ends
            raise ImageReadError(f"{path}: not a regular file (a pipe, device or socket)")
        if info.st_size > MAX_IMAGE_BYTES:
            raise ImageReadError(f"{path}: {info.st_size} bytes, over the {MAX_IMAGE_BYTES} "
                                 "byte limit")  # fmt: skip
        with Path(path).open("rb") as file:
            data = file.read(MAX_IMAGE_BYTES + 1)  # a file growing since: still bounded
        if len(data) > MAX_IMAGE_BYTES:
            raise ImageReadError(f"{path}: over the {MAX_IMAGE_BYTES} byte limit")
        return data
    except ImageReadError:
        raise
    except ValueError as exc:  # a NUL byte in the path: Python refuses it before the OS
        raise ImageReadError(f"{str(path)!r}: not a usable path ({exc})") from None
    except FileNotFoundError:
        raise ImageReadError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise ImageReadError(f"{path}: a folder, not an image file") from None
    except OSError as exc:
        raise ImageReadError(f"{path}: cannot read ({exc.strerror or exc})") from None


def centre_bounded(image: Any, ratio: int = MAX_ASPECT) -> Any:
    """``image`` with its long side cut, around the centre, to ``ratio`` times its short side
    (an image within that shape is returned as it is)."""
    width, height = image.size
    short = min(width, height)
    keep = max(short, 1) * ratio
    if max(width, height) <= keep:
        return image
    if width > height:
        left = (width - keep) // 2
        return image.crop((left, 0, left + keep, height))
    top = (height - keep) // 2
    return image.crop((0, top, width, top + keep))


def as_image(image: Any) -> Any:
    """A query image as a PIL image: a PIL image, the bytes of a file, or a path."""
    if isinstance(image, bytes | bytearray | memoryview):
        return load_image(bytes(image), "the image given")
    if isinstance(image, str | Path):
        return load_image(read_image_file(image), str(image))
    if hasattr(image, "convert") and hasattr(image, "size"):
        return image
    raise ImageReadError(f"an image is a path, bytes or a PIL image, not {type(image).__name__}")


def is_clip_folder(path: str | Path | None) -> bool:
    """Whether ``path`` is a CLIP model folder in either layout (no model is loaded)."""
    if path is None or not Path(path).is_dir():
        return False
    try:
        folder = clip_folder(path)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (ValueError, OSError):
        return False
    return config.get("model_type") == "clip" or "CLIPModel" in config.get("architectures", [])


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
        window = int(getattr(self._model.config.text_config, "max_position_embeddings", 77))
        self.config = EncoderConfig(
            model_name=Path(model).name or str(model), model_path=str(folder),
            fingerprint=model_fingerprint(folder), pooling="cls", normalize=True,
            max_length=window, query_prefix="", document_prefix="", dim=self.dim,
            backend="torch", precision="float32", modality="text+image",
        )  # fmt: skip

    def encode_queries(self, texts: Sequence[str]) -> np.ndarray:
        """Query texts (what a searcher calls): the text tower, as :meth:`encode_texts`."""
        return self.encode_texts(texts)

    def encode_documents(self, texts: Sequence[str]) -> np.ndarray:
        """Document texts: the text tower, as :meth:`encode_texts`."""
        return self.encode_texts(texts)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        """Token counts (special tokens included) before the text window cuts them."""
        encoded = self._processor.tokenizer(list(texts), truncation=False)
        return [len(ids) for ids in encoded["input_ids"]]

    def encode_image_bytes(self, blobs: Sequence[bytes], names: Sequence[str] = ()) -> np.ndarray:
        """Image files' bytes -> vectors (``names``: for errors), each decoded when its batch
        is encoded: memory holds one decoded image at a time."""
        labels = list(names) or [f"image #{i + 1}" for i in range(len(blobs))]
        return self._run([_Blob(b, n) for b, n in zip(blobs, labels, strict=True)], text=False)

    def encode_texts(self, texts: Sequence[str]) -> np.ndarray:
        """L2-normalised text vectors, float32 (n, dim)."""
        return self._run(list(texts), text=True)

    def encode_images(self, images: Sequence[Any]) -> np.ndarray:
        """L2-normalised image vectors for PIL images, float32 (n, dim)."""
        return self._run(list(images), text=False)

    def _pixels(self, item: Any) -> Any:
        """One image's model input; a file's bytes are decoded here, so a batch holds one
        decoded image at a time (and the model's small inputs)."""
        image = load_image(*item) if isinstance(item, _Blob) else item.convert("RGB")
        image = centre_bounded(image)  # the processor's resize is bounded by the shape
        return self._processor.image_processor([image], return_tensors="pt")["pixel_values"]

    def _run(self, items: list[Any], *, text: bool) -> np.ndarray:
        import torch

        out = np.zeros((len(items), self.dim), dtype=np.float32)
        for start in range(0, len(items), self.batch_size):
            part = items[start : start + self.batch_size]
            with torch.inference_mode():
                if text:
                    inputs = self._processor.tokenizer(
                        part, padding=True, truncation=True, return_tensors="pt",
                        max_length=self.config.max_length,
                    )  # fmt: skip
                    feats = self._model.get_text_features(**inputs)
                else:
                    pixels = torch.cat([self._pixels(item) for item in part])
                    feats = self._model.get_image_features(pixel_values=pixels)
            feats = getattr(feats, "pooler_output", feats)
            feats = torch.nn.functional.normalize(feats.float(), dim=-1)
            out[start : start + len(part)] = feats.numpy()
        return out
