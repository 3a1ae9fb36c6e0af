"""The playground on an image index (#32) in a real browser (Debian's chromium driven by
Playwright) against the real service and the ES-API server: image hits show thumbnails served
from the --image-root folder (fetched with the API key), and an uploaded image searches image ->
image."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

pytest.importorskip("PIL")
pytest.importorskip("uvicorn", reason="the serve extra is not installed")

from es_semantic.cli import cli
from es_semantic.service.app import ServiceConfig, create_app
from tests.integration.test_playground import chromium_path
from tests.integration.test_service import KEY, running
from tests.needs import need_module
from tests.tiny_clip import tiny_clip, write_image

COLOURS = {"red": (220, 20, 20), "green": (20, 200, 20), "blue": (20, 20, 220)}


@pytest.fixture
def served(es_server: Any, tiny: Any, index_name: str, tmp_path: Path) -> Any:
    from es_semantic.encoding.images import ImageEncoder

    (tmp_path / "clip").mkdir()
    clip = ImageEncoder(tiny_clip(tmp_path / "clip"))
    folder = tmp_path / "photos"
    for name, colour in COLOURS.items():
        write_image(folder / f"{name}.png", colour, shape="disc")
    args = ["index", index_name, str(folder), "--format", "images", "--es-url",
            es_server.config.url, "--model", clip.config.model_path]  # fmt: skip
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    config = ServiceConfig(indices=(index_name,), api_keys=(KEY,), image_roots=(str(folder),))
    app = create_app(tiny, config=config, es_config=es_server.config, image_encoder=clip)
    with running(app) as url:
        yield url, index_name, folder


@pytest.mark.slow
def test_image_hits_show_thumbnails_and_an_image_searches(served: Any, tmp_path: Path) -> None:
    sync_api = need_module("playwright.sync_api", "pip install 'es-semantic[test]'")
    url, index, folder = served
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(url + "/")
        page.fill("#api-key", KEY)
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector(f"#index option:text-is('{index}')", state="attached")
        page.wait_for_selector("#image-input:not(.hidden)")  # an image index, a CLIP model
        page.fill("#query", "a red disc")
        page.click("#run")
        page.wait_for_selector(".column[data-mode='kNN'] .hit img.thumb")
        loaded = page.locator(".column[data-mode='kNN'] img.thumb")
        page.wait_for_function(
            "() => [...document.querySelectorAll(\".column[data-mode='kNN'] img.thumb\")]"
            ".every((img) => img.complete && img.naturalWidth > 0)"
        )
        assert loaded.count() == 3
        # image -> image: the uploaded file finds itself first, without a query
        page.fill("#query", "")
        page.set_input_files("#image-file", str(folder / "green.png"))
        page.click("#run")
        page.wait_for_selector(".column[data-mode='image'] .hit[data-id]")
        first = page.locator(".column[data-mode='image'] .hit .title").first.inner_text()
        assert first.endswith("green.png")
        page.screenshot(path=str(tmp_path / "images.png"), full_page=True)
        browser.close()
