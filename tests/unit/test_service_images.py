"""The service's images (#32) without a cluster: {"image"} items in /v1/embeddings and /embed
equal the CLIP model's own vectors, every bad image is a one-line 400/413, and thumbnails come
only from the folders given at start (no ``..``, absolute path, encoded form or symlink out)."""

from __future__ import annotations

import base64
import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("PIL")
pytest.importorskip("fastapi")
from fastapi.testclient import TestClient
from PIL import Image

from es_semantic.service.app import ServiceConfig, create_app
from tests.tiny_clip import tiny_clip


def png(colour: Any = "red", size: tuple[int, int] = (40, 36), fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Any:
    from es_semantic.encoding.images import ImageEncoder

    return ImageEncoder(tiny_clip(tmp_path_factory.mktemp("clip")))


@pytest.fixture
def folders(tmp_path: Path) -> tuple[Path, Path]:
    """A served folder with images (one in a subfolder), and a secret image outside it."""
    root, outside = tmp_path / "served", tmp_path / "private"
    (root / "sub").mkdir(parents=True)
    outside.mkdir()
    (root / "a.png").write_bytes(png("red"))
    (root / "sub" / "b.jpg").write_bytes(png("blue", fmt="JPEG"))
    (root / "notes.txt").write_text("not an image")
    (outside / "secret.png").write_bytes(png("green"))
    return root, outside


@pytest.fixture
def client(tiny: Any, clip: Any, folders: tuple[Path, Path]) -> Iterator[TestClient]:
    config = ServiceConfig(image_roots=(str(folders[0]),), max_images=2,
                           max_image_bytes=20_000, max_image_pixels=250_000)  # fmt: skip
    with TestClient(create_app(tiny, config=config, image_encoder=clip)) as test_client:
        yield test_client


def test_images_and_texts_embed_in_the_clip_space(client: TestClient, clip: Any) -> None:
    red, blue = Image.open(io.BytesIO(png("red"))), Image.open(io.BytesIO(png("blue")))
    want_images, want_text = clip.encode_images([red, blue]), clip.encode_texts(["a red square"])
    wrapped = "\n".join(b64(png("red"))[i : i + 76] for i in range(0, len(b64(png("red"))), 76))
    items = [{"image": wrapped}, {"text": "a red square"},
             {"image": "data:image/png;base64," + b64(png("blue"))}]  # fmt: skip
    answer = client.post("/v1/embeddings", json={"input": items})
    assert answer.status_code == 200, answer.text
    got = np.array([d["embedding"] for d in answer.json()["data"]], dtype=np.float32)
    np.testing.assert_allclose(got[[0, 2]], want_images, atol=1e-5)
    np.testing.assert_allclose(got[1], want_text[0], atol=1e-5)
    assert answer.json()["model"] == clip.config.model_name
    tei = client.post("/embed", json={"inputs": items}).json()
    np.testing.assert_allclose(np.array(tei, dtype=np.float32), got, atol=1e-6)


def test_tei_normalize_false_is_refused_for_image_items(client: TestClient) -> None:
    """CLIP vectors are unit length here (texts and images share one space): asked for them
    not normalised, the service answered unit vectors, silently."""
    items = [{"image": b64(png("red"))}, {"text": "a red square"}]
    refused = client.post("/embed", json={"inputs": items, "normalize": False})
    assert refused.status_code == 422 and "normalize" in refused.json()["error"], refused.text
    assert client.post("/embed", json={"inputs": items, "normalize": True}).status_code == 200


def test_plain_texts_still_go_to_the_text_model(client: TestClient, tiny: Any) -> None:
    answer = client.post("/v1/embeddings", json={"input": ["search engine"]})
    got = np.array(answer.json()["data"][0]["embedding"], dtype=np.float32)
    np.testing.assert_allclose(got, tiny.encode_documents(["search engine"])[0], atol=1e-5)
    mixed = client.post("/v1/embeddings", json={"input": ["x", {"image": b64(png())}]})
    assert mixed.status_code == 400 and 'as {"text": ...}' in mixed.json()["error"]


def test_a_clip_model_served_as_the_model_embeds_texts_and_images(clip: Any) -> None:
    with TestClient(create_app(clip)) as served:  # serve --model CLIP_DIR
        texts = served.post("/v1/embeddings", json={"input": ["a red square"]}).json()
        tei = served.post("/embed", json={"inputs": ["a red square", {"image": b64(png())}]})
        image = served.post("/embed", json={"inputs": [{"image": b64(png())}]})
    want = clip.encode_texts(["a red square"])[0]
    np.testing.assert_allclose(texts["data"][0]["embedding"], want, atol=1e-5)
    assert tei.status_code == 400  # plain strings beside items: one sentence, as with two models
    red = clip.encode_images([Image.open(io.BytesIO(png()))])[0]
    np.testing.assert_allclose(image.json()[0], red, atol=1e-5)


def test_a_text_over_clips_window_is_cut_or_refused_as_for_a_text_model(clip: Any) -> None:
    long_text = " ".join(["red"] * (clip.config.max_length * 3))
    with TestClient(create_app(clip)) as served:  # serve --model CLIP_DIR
        refused = served.post("/embed", json={"inputs": [long_text]})
        cut = served.post("/embed", json={"inputs": [long_text], "truncate": True})
        item = served.post("/v1/embeddings", json={"input": [{"text": long_text}]})
    assert refused.status_code == 413 and "truncate=true" in refused.json()["error"]
    assert cut.status_code == 200 and len(cut.json()[0]) == clip.dim
    assert item.status_code == 200, item.text


def test_without_a_clip_model_images_are_refused(tiny: Any) -> None:
    with TestClient(create_app(tiny)) as plain:
        answer = plain.post("/embed", json={"inputs": [{"image": b64(png())}]})
    assert answer.status_code == 400 and "--image-model" in answer.json()["error"]


def _truncated() -> bytes:
    data = png("red", size=(200, 200))
    return data[: len(data) // 2]


def _ppm() -> bytes:  # a format Pillow reads but the service does not take
    out = io.BytesIO()
    Image.new("RGB", (8, 8)).save(out, "PPM")
    return out.getvalue()


@pytest.mark.parametrize(
    ("image", "status", "words"),
    [
        ("https://example.com/cat.png", 400, "URLs are not fetched"),
        ("not base64 at all!", 400, "neither base64 nor a data:image"),
        ("", 400, "is empty (0 bytes)"),
        (b64(b"plain text, not an image"), 400, "not an image in a supported format"),
        (b64(_ppm()), 400, "not an image in a supported format"),
        (b64(_truncated()), 400, "truncated or corrupt"),
        (b64(png(size=(600, 600))), 413, "pixels; the limit is 250000"),
        (b64(bytes(30_000)), 413, "the limit is 20000 (serve --max-image-bytes)"),
    ],
)  # fmt: skip
def test_each_bad_image_is_one_sentence(
    client: TestClient, image: str, status: int, words: str
) -> None:
    answer = client.post("/v1/embeddings", json={"input": [{"image": image}]})
    assert answer.status_code == status, answer.text
    message = answer.json()["error"]
    assert words in message and "input #0" in message and "\n" not in message


def test_too_many_images_and_pillows_bomb_limit(
    client: TestClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    three = [{"image": b64(png())}] * 3
    answer = client.post("/embed", json={"inputs": three})
    assert answer.status_code == 413 and "3 images; the limit is 2" in answer.json()["error"]
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 500)  # 40x36 is over it: a "bomb"
    bomb = client.post("/embed", json={"inputs": [{"image": b64(png())}]})
    assert bomb.status_code == 413 and "decompression bomb" in bomb.json()["error"]


def test_image_search_needs_a_cluster_and_a_model(client: TestClient, tiny: Any) -> None:
    answer = client.post("/indices/photos/search/image", json={"image": b64(png())})
    assert answer.status_code == 503  # no Elasticsearch configured here
    with TestClient(create_app(tiny, config=ServiceConfig())) as plain:
        assert plain.post("/indices/x/search/image", json={"image": "x"}).status_code == 503


def test_thumbnails_come_from_the_served_folders(
    client: TestClient, folders: tuple[Path, Path]
) -> None:
    root, _ = folders
    for path in ("a.png", "sub/b.jpg", str(root / "sub" / "b.jpg"), "sub/../a.png"):
        answer = client.get("/playground/image", params={"path": path})
        assert answer.status_code == 200, path
        assert answer.headers["content-type"] == "image/jpeg"
        assert max(Image.open(io.BytesIO(answer.content)).size) <= 256


def test_no_path_escapes_the_served_folders(client: TestClient, folders: tuple[Path, Path]) -> None:
    root, outside = folders
    (root / "link.png").symlink_to(outside / "secret.png")  # a symlink out of the folder
    (root / "dirlink").symlink_to(outside, target_is_directory=True)
    attempts = [
        "../private/secret.png", str(outside / "secret.png"), "sub/../../private/secret.png",
        "link.png", "dirlink/secret.png", "notes.txt", "missing.png", "", "a.png\x00.png",
        "//" + str(outside / "secret.png"), str(root) + "/../private/secret.png",
    ]  # fmt: skip
    for path in attempts:
        answer = client.get("/playground/image", params={"path": path})
        assert answer.status_code in (404, 422), path
    raw = ["%2e%2e%2fprivate%2fsecret.png", "..%2fprivate%2fsecret.png",
           "%252e%252e%252fprivate%252fsecret.png", "%2e%2e/private/secret.png",
           "..%5cprivate%5csecret.png", "%2fetc%2fpasswd"]  # fmt: skip
    for query in raw:
        answer = client.get(f"/playground/image?path={query}")
        assert answer.status_code == 404, query
        assert answer.headers["content-type"] == "application/json"


def test_no_roots_no_thumbnails(tiny: Any, folders: tuple[Path, Path]) -> None:
    with TestClient(create_app(tiny)) as plain:
        answer = plain.get("/playground/image", params={"path": str(folders[0] / "a.png")})
    assert answer.status_code == 404 and "--image-root" in answer.json()["error"]


def test_a_thin_image_is_encoded_and_thumbnailed_within_bounds(
    client: TestClient, folders: tuple[Path, Path]
) -> None:
    """1x8000 is 8000 pixels, under every cap; CLIP's shortest-edge resize would make it
    224 x 1.8M before the crop: the encoder bounds its shape, Pillow's thumbnail only shrinks."""
    import tracemalloc

    thin = png("red", size=(8000, 1))
    (folders[0] / "thin.png").write_bytes(thin)
    tracemalloc.start()
    answer = client.post("/v1/embeddings", json={"input": [{"image": b64(thin)}]})
    thumb = client.get("/playground/image", params={"path": "thin.png"})
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert answer.status_code == 200 and thumb.status_code == 200
    assert max(Image.open(io.BytesIO(thumb.content)).size) <= 256
    assert peak < 20 << 20, peak


def test_a_malformed_body_is_one_sentence_that_does_not_echo_the_input(tiny: Any) -> None:
    """FastAPI's default 422 echoes the whole request body (a base64 image, a document's text)
    in a list of dicts; the service answers one sentence naming the field and what is wrong."""
    payload = b64(png()) * 50
    with TestClient(create_app(tiny)) as plain:
        wrong_type = plain.post("/v1/embeddings", json={"input": 5, "note": payload})
        missing = plain.post("/embed", json={"text": payload})
    for answer in (wrong_type, missing):
        assert answer.status_code == 422
        error = answer.json()["error"]
        assert isinstance(error, str) and "\n" not in error and payload[:40] not in answer.text
    assert "input" in wrong_type.json()["error"] and "inputs" in missing.json()["error"]


def test_an_image_gone_between_its_check_and_its_read_is_a_404(tmp_path: Path) -> None:
    from es_semantic.service.images import thumbnail
    from es_semantic.service.state import HTTPProblem

    gone = tmp_path / "gone.png"
    with pytest.raises(HTTPProblem) as raised:
        thumbnail(gone, ServiceConfig())
    assert raised.value.status == 404
