"""Review of image indexing (#32) on the local server: the model failing in the middle of a
batch of images and a file deleted between the folder's listing and its reading each end as
one dead letter naming the file and why, beside the good images, each record counted once."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("PIL")

from tests.tiny_clip import tiny_clip, write_image


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from es_semantic.encoding.images import ImageEncoder

    return ImageEncoder(tiny_clip(tmp_path_factory.mktemp("clip")))


def test_a_model_error_mid_batch_and_a_vanished_file(
    es: Any, clip: Any, index_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from es_semantic.indexing.images import read_images
    from es_semantic.indexing.indexer import Indexer
    from es_semantic.indexing.readers import FieldSpec

    folder = tmp_path / "photos"
    colours = ["red", "green", "blue", "yellow", "black", "white"]
    files = [write_image(folder / f"{i}-{c}.png", c) for i, c in enumerate(colours)]
    encode = clip.encode_image_bytes

    def failing(blobs: Any, names: Any = ()) -> Any:  # the model fails on one image
        if any(str(n).endswith("2-blue.png") for n in names):
            raise RuntimeError("the model's own error on this image")
        return encode(blobs, names)

    monkeypatch.setattr(clip, "encode_image_bytes", failing)

    def records() -> Any:  # the folder is listed; then 4-black.png goes before it is read
        for record in read_images([str(folder)], FieldSpec(None, ("caption",), (), "path")):
            yield record
            if str(getattr(record, "id", "")).endswith("3-yellow.png"):
                files[4].unlink()

    dead = tmp_path / "dead.jsonl"
    report = Indexer(es, index_name, clip, batch_size=4, dead_letter=dead).index(records())
    assert (report.indexed, report.failed, report.skipped) == (4, 2, 0)  # 6 read
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    reasons = sorted(str(letter) for letter in letters)
    assert len(letters) == 2
    assert "2-blue.png" in reasons[0] and "the model's own error" in reasons[0]
    assert "4-black.png" in reasons[1] and "no such file" in reasons[1]
    es.indices.refresh(index=index_name)
    assert es.count(index=index_name)["count"] == 4
