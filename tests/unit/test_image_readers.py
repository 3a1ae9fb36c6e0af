"""Image files -> Documents (#32), without a server: the folder walk, the column of paths,
reading one image at a time, and the content hash of the image bytes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("PIL")

from es_semantic.config import EncoderConfig
from es_semantic.indexing.actions import content_hash
from es_semantic.indexing.images import image_files, read_images
from es_semantic.indexing.readers import FieldSpec, read_path
from es_semantic.schema.contract import IndexContract
from es_semantic.types import Document, ReadFailure
from tests.tiny_clip import image_bytes, write_image

CLIP = EncoderConfig("clip", "/clip", "c1ip", "cls", True, 77, "", "", 8, modality="text+image")
SPEC = FieldSpec(None, ("caption",), (), "path")


def test_the_walk_is_recursive_sorted_and_takes_image_extensions(tmp_path: Path) -> None:
    for name in ("b.PNG", "a.jpg", "sub/c.webp", ".hidden.png", ".cache/d.png"):
        write_image(tmp_path / name, "red")
    (tmp_path / "notes.txt").write_text("x")
    found = list(image_files([str(tmp_path), str(tmp_path / "notes.txt"), "nowhere.png"]))
    names = [Path(f).relative_to(tmp_path).as_posix() for f in found[:-2]]
    assert names == ["a.jpg", "b.PNG", "sub/c.webp"]
    assert found[-2] == str(tmp_path / "notes.txt")  # named on the command line: tried
    assert isinstance(found[-1], ReadFailure) and "no such file" in found[-1].reason


def test_images_are_read_one_at_a_time(tmp_path: Path) -> None:
    first, second = write_image(tmp_path / "1.png", "red"), write_image(tmp_path / "2.png", "blue")
    records = read_images([str(tmp_path)], SPEC)
    doc = next(records)
    assert isinstance(doc, Document) and doc.id == str(first)
    assert doc.metadata == {"path": str(first)} and doc.image == first.read_bytes()
    second.unlink()  # not read yet: the reader streams
    gone = next(records)
    assert isinstance(gone, ReadFailure) and gone.reason.startswith(f"{second}: no such file")


def test_a_column_of_paths_relative_to_the_data_file(tmp_path: Path) -> None:
    write_image(tmp_path / "img" / "red.png", "red")
    rows = [
        {"id": "1", "file": "img/red.png", "caption": "a red square", "lang": "en"},
        {"id": "2", "caption": "no image"},
        {"id": "3", "file": 7},
        {"id": "4", "file": "img/red.png", "caption": ["not", "text"]},
    ]
    data = tmp_path / "rows.jsonl"
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    spec = FieldSpec(None, ("caption",), ("lang",), "file")
    out = list(read_path(str(data), None, spec))
    doc = out[0]
    assert isinstance(doc, Document)
    assert (doc.id, dict(doc.texts), dict(doc.metadata)) == (
        "1", {"caption": "a red square"}, {"lang": "en", "file": "img/red.png"})  # fmt: skip
    reasons = [r.reason for r in out[1:] if isinstance(r, ReadFailure)]
    assert reasons[0] == "image field 'file' is missing"
    assert reasons[1] == "image field 'file' is int, not a path"
    assert "text field 'caption' is list" in reasons[2]


def test_the_content_hash_follows_the_image_bytes() -> None:
    contract = IndexContract.from_encoder(CLIP)
    red = Document("a.png", {}, {"path": "a.png"}, image=image_bytes("red"))
    same = Document("a.png", {}, {"path": "a.png"}, image=image_bytes("red"))
    blue = Document("a.png", {}, {"path": "a.png"}, image=image_bytes("blue"))
    assert content_hash(red, contract) == content_hash(same, contract)
    assert content_hash(red, contract) != content_hash(blue, contract)
