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


def test_hybrid_uses_the_image_vector_and_the_caption(
    es: Any, es_server: Any, clip: Any, tiny: Any, index_name: str, tmp_path: Path
) -> None:
    """Hybrid image + text: the kNN leg ranks the image sent first (its own vector), the
    keyword leg the caption matching the text; with the text's vector in the kNN leg, every
    image would put the same hit first. The Python API, its async twin and the service."""
    import asyncio
    import base64

    from fastapi.testclient import TestClient

    from es_semantic.elastic.client import make_async_client
    from es_semantic.indexing.indexer import Indexer
    from es_semantic.search.searcher import AsyncSearcher, Searcher
    from es_semantic.service.app import ServiceConfig, create_app

    names = ["red", "green", "blue", "yellow"]
    photos = {n: write_image(tmp_path / f"{n}.png", n, shape="disc") for n in names}
    docs = [{"id": n, "path": str(p), "caption": f"{n} things"} for n, p in photos.items()]
    assert Indexer(es, index_name, clip).index(docs).indexed == len(names)
    es.indices.refresh(index=index_name)

    def firsts(hits: Any) -> tuple[str, str]:
        by_leg = {leg: h["id"] for h in hits for leg, rank in h["ranks"].items() if rank == 1}
        return by_leg["knn"], by_leg["keyword"]

    searcher = Searcher(es, index_name, clip)
    for name, path in photos.items():
        result = searcher.search_image(path, query="red things", k=4)
        assert result.mode == "hybrid"
        assert firsts([h.to_json() for h in result.hits]) == (name, "red"), name

    async def twin() -> Any:
        aes = make_async_client(es_server.config)
        try:
            return await AsyncSearcher(aes, index_name, clip).search_image(
                photos["blue"], query="red things", k=4
            )
        finally:
            await aes.close()

    assert firsts([h.to_json() for h in asyncio.run(twin()).hits]) == ("blue", "red")
    app = create_app(clip, config=ServiceConfig(), es_config=es_server.config, image_encoder=clip)
    with TestClient(app) as client:
        data = base64.b64encode(photos["green"].read_bytes()).decode()
        body = {"image": data, "query": "red things", "k": 4}
        answer = client.post(f"/indices/{index_name}/search/image", json=body)
    assert answer.status_code == 200, answer.text
    assert firsts(answer.json()["hits"]) == ("green", "red")
    text_only = create_app(tiny, config=ServiceConfig(), es_config=es_server.config)
    with TestClient(text_only) as client:  # no CLIP model: one sentence naming the option
        answer = client.post(f"/indices/{index_name}/search/image", json=body)
    assert answer.status_code == 400 and "--image-model" in answer.json()["error"]


def _indexed_folder(es: Any, clip: Any, index: str, folder: Path, dead: Path, size: int) -> Any:
    from es_semantic.indexing.images import read_images
    from es_semantic.indexing.indexer import Indexer
    from es_semantic.indexing.readers import FieldSpec

    records = read_images([str(folder)], FieldSpec(None, ("caption",), (), "path"))
    return Indexer(es, index, clip, batch_size=size, dead_letter=dead).index(records)


def test_a_valid_image_is_decoded_once(
    es: Any, clip: Any, index_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader checks an image's header (format, size, the bomb limit); its pixels are
    decoded once, by the image tower (they used to be decoded by the reader's check too)."""
    from PIL import ImageFile

    folder = tmp_path / "photos"
    for i, colour in enumerate(["red", "green", "blue"]):
        write_image(folder / f"{i}-{colour}.png", colour)
    real, decoded = ImageFile.ImageFile.load, []

    def counted(image: Any) -> Any:
        if image.tile:  # pixels still to decode from the file (none once loaded)
            decoded.append(image.format)
        return real(image)

    monkeypatch.setattr(ImageFile.ImageFile, "load", counted)
    report = _indexed_folder(es, clip, index_name, folder, tmp_path / "dead.jsonl", 32)
    assert (report.indexed, report.failed) == (3, 0)
    assert decoded == ["PNG"] * 3


def test_a_batch_of_only_bad_image_bodies_is_dead_lettered_and_the_run_goes_on(
    es: Any, clip: Any, index_name: str, tmp_path: Path
) -> None:
    """A truncated or corrupt body passes the reader's header check and fails in the image
    tower, alone: a bad file, not a broken model, so a batch holding nothing else, or more
    bad files in a row than the model's failing streak, does not stop the run."""
    from tests.tiny_clip import image_bytes

    folder = tmp_path / "photos"
    folder.mkdir()
    good = image_bytes("red", fmt="PNG", shape="disc")
    for i in range(10):  # more than FAILING_STREAK in a row, two to a batch
        (folder / f"{i:02d}-cut.png").write_bytes(good[: len(good) // 2])  # the header whole
    write_image(folder / "99-whole.png", "blue")
    dead = tmp_path / "dead.jsonl"
    report = _indexed_folder(es, clip, index_name, folder, dead, 2)
    assert (report.indexed, report.failed) == (1, 10)
    letters = [json.loads(line) for line in dead.read_text().splitlines()]
    assert len(letters) == 10
    for i, letter in enumerate(letters):
        name = str(folder / f"{i:02d}-cut.png")
        assert letter["source"] == name, letter
        assert letter["reason"] == f"{name}: corrupt or truncated image (image file is truncated)"
