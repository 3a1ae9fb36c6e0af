"""The service's image search (#32) on the local server: an image index made by
``index --format images``, then image -> image (each image finds itself first), text -> image
through the CLIP model's text tower, thumbnails of the hits from the served folder, and a text
index refused for image search."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("PIL")
pytest.importorskip("fastapi")

from fastapi.testclient import TestClient

from es_semantic import Indexer
from es_semantic.cli import cli
from es_semantic.service.app import ServiceConfig, create_app
from tests.tiny_clip import tiny_clip, write_image

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220),
           "yellow": (230, 230, 0)}  # fmt: skip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from es_semantic.encoding.images import ImageEncoder

    return ImageEncoder(tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture
def photos(es_server: Any, clip: Any, index_name: str, tmp_path: Path) -> tuple[str, Path]:
    folder = tmp_path / "photos"
    for name, colour in COLOURS.items():
        write_image(folder / f"{name}.png", colour, shape="disc")
    args = ["index", index_name, str(folder), "--format", "images", "--es-url",
            es_server.config.url, "--model", clip.config.model_path]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return index_name, folder


@pytest.fixture
def client(es_server: Any, tiny: Any, clip: Any, photos: tuple[str, Path]) -> Iterator[TestClient]:
    config = ServiceConfig(image_roots=(str(photos[1]),))
    app = create_app(tiny, config=config, es_config=es_server.config, image_encoder=clip)
    with TestClient(app) as test_client:
        yield test_client


def test_each_image_finds_itself_first(client: TestClient, photos: tuple[str, Path]) -> None:
    index, folder = photos
    for name in COLOURS:
        data = base64.b64encode((folder / f"{name}.png").read_bytes()).decode()
        answer = client.post(f"/indices/{index}/search/image", json={"image": data, "k": 4})
        assert answer.status_code == 200, answer.text
        hits = answer.json()["hits"]
        assert len(hits) == 4 and Path(hits[0]["source"]["path"]).name == f"{name}.png"
        assert hits[0]["score"] >= hits[1]["score"]
    data = base64.b64encode((folder / "blue.png").read_bytes()).decode()
    hybrid = client.post(f"/indices/{index}/search/image", json={"image": data, "query": "blue"})
    assert hybrid.status_code == 200, hybrid.text
    assert hybrid.json()["mode"] == "hybrid" and hybrid.json()["hits"]
    keyword = client.post(f"/indices/{index}/search/image", json={"image": data, "mode": "keyword"})
    assert keyword.status_code == 422  # an image query is kNN, or hybrid with text


def test_text_finds_images_and_hits_have_thumbnails(
    client: TestClient, photos: tuple[str, Path]
) -> None:
    index, _ = photos
    answer = client.post(f"/indices/{index}/search", json={"query": "a red disc", "mode": "knn"})
    assert answer.status_code == 200, answer.text
    hits = answer.json()["hits"]
    assert len(hits) == 4
    for hit in hits:
        thumb = client.get("/playground/image", params={"path": hit["source"]["path"]})
        assert thumb.status_code == 200 and thumb.headers["content-type"] == "image/jpeg"


def test_a_text_index_is_refused_for_image_search(
    client: TestClient, es: Any, tiny: Any, index_name: str, photos: tuple[str, Path]
) -> None:
    text_index = f"{index_name}-text"
    try:
        Indexer(es, text_index, tiny, chunking="none").index([{"id": "1", "text": "a cat"}])
        data = base64.b64encode((photos[1] / "red.png").read_bytes()).decode()
        answer = client.post(f"/indices/{text_index}/search/image", json={"image": data})
        assert answer.status_code == 409 and "holds text vectors" in answer.json()["error"]
    finally:
        es.options(ignore_status=404).indices.delete(index=text_index)
