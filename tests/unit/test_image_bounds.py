"""Review of image search (#32): inputs that are small on disk but not in memory, and paths
that make the OS raise something other than OSError, each bounded or a dead letter."""

from __future__ import annotations

import tracemalloc
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PIL")

from es_semantic.indexing.images import image_files, image_record, read_images
from es_semantic.indexing.readers import FieldSpec
from es_semantic.types import Document, ReadFailure
from tests.tiny_clip import tiny_clip, write_image

SPEC = FieldSpec(None, ("caption",), (), "path")


@pytest.fixture(scope="module")
def encoder(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from es_semantic.encoding.images import ImageEncoder

    return ImageEncoder(tiny_clip(tmp_path_factory.mktemp("clip")))


def test_a_thin_image_is_not_blown_up_by_the_processor(encoder: Any) -> None:
    """A 1x8000 image (8000 pixels, a few hundred bytes as a PNG: under every pixel cap) is
    resized by CLIP's processor to its shortest edge: 32 x 256000 here, 224 x 1.8M with a
    real CLIP (GBs as float32). Only its centre is kept by the crop, so only the centre is
    processed."""
    from PIL import Image

    thin = Image.new("RGB", (1, 8000), "red")
    tracemalloc.start()
    try:
        vector = encoder.encode_images([thin])
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 16 << 20, f"{peak >> 20} MiB for one 8000-pixel image"
    assert np.isclose(np.linalg.norm(vector[0]), 1.0)


def test_a_bounded_panorama_keeps_its_vector(encoder: Any) -> None:
    """The centre the crop keeps is what the model sees: a 1:40 image (cheap enough to
    process whole) gives the same vector, bounded or not; ordinary shapes are untouched."""
    from PIL import Image

    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 255, (400, 10, 3), dtype=np.uint8)
    pixels[150:250] = 200  # the centre differs from the ends
    wide = Image.fromarray(pixels)
    whole = encoder._processor.image_processor([wide], return_tensors="pt")["pixel_values"]
    import torch

    with torch.inference_mode():
        feats = encoder._model.get_image_features(pixel_values=whole)
        feats = getattr(feats, "pooler_output", feats)
        want = torch.nn.functional.normalize(feats.float(), dim=-1).numpy()
    got = encoder.encode_images([wide])
    assert float(got[0] @ want[0]) > 0.99


def test_a_path_with_a_nul_byte_is_a_dead_letter(tmp_path: Path) -> None:
    """Python refuses a path with a NUL byte with ValueError (not OSError): one record, one
    dead letter, and the records after it still read."""
    good = write_image(tmp_path / "good.png", "red")
    spec = FieldSpec(None, ("caption",), (), "path", str(tmp_path))
    bad = image_record({"id": "1", "path": "bad\x00.png"}, spec, "table.jsonl:1")
    assert isinstance(bad, ReadFailure) and "bad\\x00.png" in bad.reason
    assert isinstance(image_record({"id": "2", "path": good.name}, spec, "t:2"), Document)


def test_a_folder_that_cannot_be_listed_is_a_dead_letter(tmp_path: Path, monkeypatch: Any) -> None:
    """os.walk drops a folder it cannot list without a word: the images in it would vanish
    from the run's report. Each is named as a failure instead."""
    import os

    write_image(tmp_path / "a.png", "red")
    locked = tmp_path / "locked"
    write_image(locked / "b.png", "blue")
    real = os.scandir

    def scandir(path: Any = ".") -> Any:
        if Path(path) == locked:
            raise PermissionError(13, "Permission denied", str(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)
    found = list(image_files([str(tmp_path)]))
    assert found[0] == str(tmp_path / "a.png")
    assert len(found) == 2 and isinstance(found[1], ReadFailure)
    assert str(locked) in found[1].reason and "Permission denied" in found[1].reason
    records = list(read_images([str(tmp_path)], SPEC))
    assert [type(r) for r in records] == [Document, ReadFailure]


def test_a_symlink_loop_and_a_folder_named_like_an_image(tmp_path: Path) -> None:
    """A symlink loop named like an image is one dead letter; a folder named like an image
    is walked (its images found), never read as a file; the walk does not follow links."""
    write_image(tmp_path / "a.png", "red")
    (tmp_path / "loop.png").symlink_to(tmp_path / "loop.png")
    write_image(tmp_path / "album.jpg" / "c.png", "blue")
    (tmp_path / "album.jpg" / "up").symlink_to(tmp_path)  # a cycle if links were followed
    records = list(read_images([str(tmp_path)], SPEC))
    docs = [r.id for r in records if isinstance(r, Document)]
    fails = [r.reason for r in records if isinstance(r, ReadFailure)]
    assert docs == [str(tmp_path / "a.png"), str(tmp_path / "album.jpg" / "c.png")]
    assert len(fails) == 1 and "loop.png" in fails[0]


def test_a_named_pipe_named_like_an_image_is_a_dead_letter(tmp_path: Path) -> None:
    """A FIFO (or a link to a device) in a folder: its size says 0, and reading it blocks
    forever (or never ends): only regular files are read, each at most the byte limit."""
    import os
    import threading

    write_image(tmp_path / "a.png", "red")
    os.mkfifo(tmp_path / "pipe.png")
    (tmp_path / "zero.png").symlink_to("/dev/zero")
    out: list[Any] = []
    reader = threading.Thread(target=lambda: out.extend(read_images([str(tmp_path)], SPEC)),
                              daemon=True)  # fmt: skip
    reader.start()
    reader.join(20)
    assert not reader.is_alive(), "reading a FIFO named like an image hangs the run"
    assert [type(r) for r in out] == [Document, ReadFailure, ReadFailure]
    assert out[1].reason.endswith("pipe.png: not a regular file (a pipe, device or socket)")
    assert out[2].reason.endswith("zero.png: not a regular file (a pipe, device or socket)")
    (tmp_path / "album.jpg").mkdir()
    folder = image_record({"id": "1", "path": "album.jpg"}, replace_base(tmp_path), "t:1")
    assert isinstance(folder, ReadFailure) and "album.jpg: a folder, not an image file" in (
        folder.reason
    )


def replace_base(base: Path) -> FieldSpec:
    return FieldSpec(None, ("caption",), (), "path", str(base))


def test_the_bomb_limit_does_not_depend_on_the_warning_filters(monkeypatch: Any) -> None:
    """Pillow warns (not raises) between its limit and twice it; turning that warning into an
    error with warnings.catch_warnings is process-wide and not thread-safe (the async indexer
    reads while its encode thread decodes): a filter lost to another thread let the bomb
    through. The pixel count is compared with the limit itself."""
    import warnings

    from PIL import Image

    from es_semantic.encoding.images import ImageReadError, load_image
    from tests.tiny_clip import image_bytes

    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40x36 = 1440: the warning band
    monkeypatch.setattr(warnings, "simplefilter", lambda *a, **k: None)  # the filter lost
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        with pytest.raises(ImageReadError, match="decompression bomb"):
            load_image(image_bytes("red", size=(40, 36)), "bomb.png")


def test_the_service_keeps_pillows_limit_above_its_own(
    tiny: Any, encoder: Any, monkeypatch: Any
) -> None:
    """serve --max-image-pixels set above Pillow's limit: Pillow's still holds, compared
    directly (requests decode in threads at once, so a warning filter is no guard)."""
    import base64
    import warnings

    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from PIL import Image

    from es_semantic.service.app import ServiceConfig, create_app
    from tests.tiny_clip import image_bytes

    config = ServiceConfig(max_image_pixels=10**9)
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)  # 40x36 = 1440: the warning band
    monkeypatch.setattr(warnings, "simplefilter", lambda *a, **k: None)  # the filter lost
    image = base64.b64encode(image_bytes("red", size=(40, 36))).decode()
    with (
        warnings.catch_warnings(),
        TestClient(create_app(tiny, config=config, image_encoder=encoder)) as client,
    ):
        warnings.filterwarnings("ignore", category=Image.DecompressionBombWarning)
        answer = client.post("/v1/embeddings", json={"input": [{"image": image}]})
    assert answer.status_code == 413, answer.text
    assert "decompression bomb" in answer.json()["error"]


def test_a_file_over_the_byte_limit_says_so(tmp_path: Path, monkeypatch: Any) -> None:
    from es_semantic.encoding import images
    from es_semantic.encoding.images import ImageReadError, read_image_file

    big = write_image(tmp_path / "big.png", "red")
    monkeypatch.setattr(images, "MAX_IMAGE_BYTES", 10)
    with pytest.raises(ImageReadError) as refused:
        read_image_file(big)
    assert str(refused.value) == f"{big}: {big.stat().st_size} bytes, over the 10 byte limit"


def test_the_async_twin_decodes_the_query_image_off_the_event_loop(
    encoder: Any, monkeypatch: Any
) -> None:
    """AsyncSearcher does model work in a thread: decoding the query image (a file of up to
    64 MiB, up to Pillow's 89M pixels) is such work, not a stall of the event loop."""
    import asyncio
    import threading

    from elasticsearch import AsyncElasticsearch

    from es_semantic.encoding import images
    from es_semantic.errors import InputError
    from es_semantic.search.searcher import AsyncSearcher

    threads: list[int] = []

    def as_image(image: Any) -> Any:
        threads.append(threading.get_ident())
        raise images.ImageReadError("q.png: no such file")

    monkeypatch.setattr(images, "as_image", as_image)

    async def search() -> int:
        aes = AsyncElasticsearch("http://127.0.0.1:9")  # never reached: the image fails first
        try:
            with pytest.raises(InputError, match=r"query image q\.png: no such file"):
                await AsyncSearcher(aes, "photos", encoder).search_image("q.png")
        finally:
            await aes.close()
        return threading.get_ident()

    loop_thread = asyncio.run(search())
    assert threads and threads[0] != loop_thread


MEMORY_SCRIPT = """
import base64, io, resource, sys
from PIL import Image
from fastapi.testclient import TestClient
from es_semantic.encoding.images import ImageEncoder
from es_semantic.service.app import ServiceConfig, create_app
clip = ImageEncoder(sys.argv[1])
out = io.BytesIO()
Image.new("RGB", (3000, 3000), "red").save(out, "PNG")
data = base64.b64encode(out.getvalue()).decode()
with TestClient(create_app(clip, config=ServiceConfig(), image_encoder=clip)) as client:
    client.post("/v1/embeddings", json={"input": [{"text": "warm up"}, {"image": data}]})
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    answer = client.post("/v1/embeddings", json={"input": [{"image": data}] * 8})
    assert answer.status_code == 200, answer.text
    print((resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) // 1024)
"""


def test_a_request_of_images_holds_one_decoded_image_at_a_time(encoder: Any) -> None:
    """Eight 3000x3000 images (each 27 MB decoded, each under the caps) in one request: the
    service decoded them all before encoding (+216 MB a request; 16 at 25M pixels: +1.5 GB,
    times the requests in flight). Each is now checked and let go, and decoded again as the
    model takes it. Peak RSS measured in a fresh process."""
    import subprocess
    import sys

    pytest.importorskip("fastapi")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-c", MEMORY_SCRIPT, encoder.config.model_path],
        capture_output=True, text=True, timeout=300, cwd=root,
        env={**__import__("os").environ, "PYTHONPATH": str(root)},
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    grown_mb = int(done.stdout.split()[-1])
    assert grown_mb < 100, f"+{grown_mb} MB for one request of 8 images"
