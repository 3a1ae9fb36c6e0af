"""Image search (#32) on the local server: a tiny CLIP trained in the test on (image,
caption) pairs finds each image by its caption (text -> image), every image finds itself
first (image -> image), hybrid with the caption field, the Python API and its async twin,
and the contract refusing a text encoder on an image index or an image on a text index."""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("PIL")

from es_semantic.cli import cli
from es_semantic.elastic.client import make_async_client
from es_semantic.errors import IndexContractError, InputError
from es_semantic.search.searcher import AsyncSearcher, Searcher
from tests.tiny_clip import image_bytes, tiny_clip, train_tiny_clip, write_image

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220),
           "yellow": (230, 230, 0), "black": (0, 0, 0)}  # fmt: skip


@pytest.fixture(scope="module")
def trained_clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random CLIP trained 40 steps on (a colour square, "a COLOUR square"): shades and
    sizes vary, so the test images below are not the training images."""
    tmp = tmp_path_factory.mktemp("clip")
    rng = np.random.default_rng(1)
    batches = []
    for _ in range(4):
        batch = []
        for name, colour in COLOURS.items():
            shade = tuple(int(np.clip(v + rng.integers(-30, 30), 0, 255)) for v in colour)
            size = (int(rng.integers(30, 60)), int(rng.integers(30, 60)))
            batch.append((image_bytes(shade, size=size), f"a {name} square"))
        batches.append(batch)
    return train_tiny_clip(tiny_clip(tmp), batches, tmp / "trained", steps=40)


@pytest.fixture
def cli_run(es_server: Any, trained_clip: Path, tmp_path: Path, monkeypatch: Any) -> Any:
    monkeypatch.chdir(tmp_path)

    def invoke(*args: str, model: Path | None = None) -> Any:
        extra = ["--es-url", es_server.config.url, "--model", str(model or trained_clip)]
        return CliRunner().invoke(cli, [*args, *extra], catch_exceptions=False)

    return invoke


@pytest.fixture
def photos(tmp_path: Path) -> dict[str, str]:
    folder = tmp_path / "photos"
    return {name: str(write_image(folder / f"{name}.png", colour, size=(44, 40)))
            for name, colour in COLOURS.items()}  # fmt: skip


def _top(result: Any) -> str:
    assert result.exit_code == 0, result.output
    return str(json.loads(result.output)["hits"][0]["id"])


def test_text_finds_its_image_and_an_image_finds_itself(
    cli_run: Any, index_name: str, photos: dict[str, str], tmp_path: Path
) -> None:
    folder = str(tmp_path / "photos")
    assert cli_run("index", index_name, folder, "--format", "images", "--quiet").exit_code == 0
    for name, path in photos.items():
        by_text = cli_run("search", index_name, f"a {name} square", "--mode", "knn", "--json")
        assert _top(by_text) == path, name
        by_image = cli_run("search", index_name, "--image", path, "--json")
        assert _top(by_image) == path
        assert json.loads(by_image.output)["mode"] == "knn"
    table = cli_run("search", index_name, "--image", photos["red"], "-k", "1")
    assert table.exit_code == 0 and table.output.splitlines()[-1].startswith("[knn]")


def test_the_captions_find_their_images_only_after_training(trained_clip: Path) -> None:
    """The negative control of the test above: the same tiny CLIP before its 40 steps does not
    rank each caption's image first, so passing there needs the learning signal."""
    from es_semantic.encoding.images import ImageEncoder

    def firsts(folder: Path) -> list[int]:
        encoder = ImageEncoder(folder)
        images = encoder.encode_image_bytes([image_bytes(c, size=(44, 40))
                                             for c in COLOURS.values()])  # fmt: skip
        texts = encoder.encode_texts([f"a {name} square" for name in COLOURS])
        return [int(i) for i in (texts @ images.T).argmax(axis=1)]

    assert firsts(trained_clip) == list(range(len(COLOURS)))
    assert firsts(trained_clip.parent / "hf") != list(range(len(COLOURS)))


def test_python_api_hybrid_with_captions_and_the_async_twin(
    es: Any, es_server: Any, trained_clip: Path, index_name: str, photos: dict[str, str]
) -> None:
    from PIL import Image

    from es_semantic.encoding.images import ImageEncoder
    from es_semantic.indexing.indexer import Indexer

    encoder = ImageEncoder(trained_clip)
    docs = [
        {"id": name, "path": path, "caption": f"{name} things"} for name, path in photos.items()
    ]
    report = Indexer(es, index_name, encoder).index(docs)
    assert report.indexed == len(photos) and report.ok
    searcher = Searcher(es, index_name, encoder)
    assert searcher.search("a blue square", mode="knn").hits[0].id == "blue"
    assert searcher.search("yellow", mode="keyword").hits[0].id == "yellow"  # the caption
    hybrid = searcher.search_image(image_bytes(COLOURS["green"]), query="green things")
    assert hybrid.mode == "hybrid" and hybrid.hits[0].id == "green"
    picture = Image.open(io.BytesIO(image_bytes(COLOURS["black"])))
    assert searcher.search_image(picture).hits[0].id == "black"
    assert searcher.search_image(Path(photos["red"]), k=1).hits[0].id == "red"
    with pytest.raises(InputError, match="query image the image given: empty file"):
        searcher.search_image(b"")

    async def run() -> tuple[list[str], Any]:
        from es_semantic.indexing.async_indexer import AsyncIndexer

        aes = make_async_client(es_server.config)
        try:
            twin = AsyncSearcher(aes, index_name, encoder)
            found = [await twin.search_image(photos[name]) for name in ("red", "blue")]
            more = [{"id": "again", "path": photos["red"]}, {"id": "bad", "path": "nowhere.png"}]
            indexed = await AsyncIndexer(aes, index_name, encoder).index(more)
            return [r.hits[0].id for r in found], indexed
        finally:
            await aes.close()

    tops, indexed = asyncio.run(run())
    assert tops == ["red", "blue"]
    assert (indexed.indexed, indexed.failed) == (1, 1)
    assert "nowhere.png: no such file" in indexed.failures[0].reason


def test_the_contract_at_every_query(
    cli_run: Any, es: Any, tiny_st_dir: Path, index_name: str, photos: dict[str, str],
    tmp_path: Path,
) -> None:  # fmt: skip
    images, texts = f"{index_name}-img", f"{index_name}-txt"
    assert cli_run("index", images, photos["red"], "--format", "images", "--quiet").exit_code == 0
    refused = cli_run("search", images, "red", model=tiny_st_dir)
    assert refused.exit_code != 0
    assert "modality: index 'text+image', encoder 'text'" in refused.output
    docs = tmp_path / "docs.jsonl"
    docs.write_text(json.dumps({"id": "1", "text": "a red square"}) + "\n")
    assert cli_run("index", texts, str(docs), "--quiet", model=tiny_st_dir).exit_code == 0
    by_image = cli_run("search", texts, "--image", photos["red"], model=tiny_st_dir)
    assert by_image.exit_code != 0 and "holds text vectors" in by_image.output
    clip_on_text = cli_run("search", texts, "red")
    assert clip_on_text.exit_code != 0
    assert "modality: index 'text', encoder 'text+image'" in clip_on_text.output
    with pytest.raises(IndexContractError, match="holds text vectors"):
        from es_semantic.encoding.encoder import Encoder

        Searcher(es, texts, Encoder(str(tiny_st_dir))).search_image(photos["red"])
    neither = cli_run("search", images)
    assert neither.exit_code != 0 and "give QUERY, or --image" in neither.output
