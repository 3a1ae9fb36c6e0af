"""The playground's learned sparse leg (#28) in a real browser against the real service, SPLADE-tiny
and the real ES-API server: a sparse column and a legs choice when the index has a sparse leg and
the service runs its model; a note saying how to get them when the service does not."""

from __future__ import annotations

import shutil

import pytest

from es_semantic import Indexer
from es_semantic.encoding.sparse import SparseEncoder
from tests.integration.test_playground import chromium_path
from tests.integration.test_service import KEY, running
from tests.integration.test_sparse import DOCS
from tests.needs import need_module
from tests.sparse_models import build_tiny_mlm, splade_tiny_dir

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
from es_semantic.service.app import ServiceConfig, create_app


def _open(sync_api, url: str, index: str):  # type: ignore[no-untyped-def]
    p = sync_api.sync_playwright().start()
    browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1500, "height": 1000})
    page.goto(url + "/")
    page.fill("#api-key", KEY)
    page.dispatch_event("#api-key", "change")
    page.wait_for_selector(f"#index option:text-is('{index}')", state="attached")
    return p, browser, page


def _search(page, query: str, labels: list[str]) -> None:  # type: ignore[no-untyped-def]
    page.fill("#query", query)
    page.click("#run")
    for label in labels:
        column = f".column[data-mode='{label}']"
        try:
            page.wait_for_selector(f"{column} .hit[data-id]")
        except Exception as exc:  # say what the column shows (an error, no hits) instead
            shown = page.locator(column).all_inner_texts()
            raise AssertionError(f"column {label!r} has no hit; it shows {shown}") from exc


def _search_while_the_index_reloads(page, index: str) -> None:  # type: ignore[no-untyped-def]
    """A search made while the index's details are being fetched again (another `change` of
    the key or the index: the CI's proxies made that answer slow) keeps the sparse column:
    what is shown stays until the new answer is in."""
    held: list[object] = []
    page.route(f"**/indices/{index}", lambda route: held.append(route))  # held to the end
    page.dispatch_event("#index", "change")
    for _ in range(200):
        if held:
            break
        page.wait_for_timeout(25)
    assert held, "the playground did not fetch the index's details again"
    _search(page, "capital of france", ["sparse"])
    for route in held:
        route.continue_()  # type: ignore[attr-defined]
    page.unroute(f"**/indices/{index}")


@pytest.mark.slow
def test_playground_runs_the_sparse_leg(es, es_server, index_name, tiny, tmp_path):
    sync_api = need_module("playwright.sync_api", "pip install 'es-semantic[test]'")
    splade = SparseEncoder(splade_tiny_dir())
    Indexer(es, index_name, tiny, sparse_encoder=splade).index(DOCS)
    config = ServiceConfig(indices=(index_name,), api_keys=(KEY,))
    app = create_app(tiny, config=config, es_config=es_server.config, sparse_encoder=splade)
    with running(app) as url:
        p, browser, page = _open(sync_api, url, index_name)
        try:
            page.wait_for_selector("#leg-sparse:not(.hidden)")
            _search(page, "capital of france", ["keyword", "kNN", "sparse", "hybrid (RRF)"])
            sparse = page.locator(".column[data-mode='sparse']")
            assert sparse.locator(".hit").first.get_attribute("data-id") == "paris"
            assert "sparse #1" in sparse.locator(".legs").first.inner_text()
            hybrid = page.locator(".column[data-mode='hybrid (RRF)']")
            assert "legs keyword+knn+sparse" in hybrid.locator(".timing").inner_text()
            assert any("sparse #" in t for t in hybrid.locator(".legs").all_inner_texts())
            _search_while_the_index_reloads(page, index_name)
            page.uncheck("#leg-sparse input")  # two legs again: the hybrid column has no sparse
            _search(page, "largest animal", ["hybrid (RRF)"])
            hybrid = page.locator(".column[data-mode='hybrid (RRF)']")
            page.wait_for_function(
                "!document.querySelector(\".column[data-mode='hybrid (RRF)'] .timing\")"
                ".textContent.includes('sparse')"
            )
            assert not any("sparse" in t for t in hybrid.locator(".legs").all_inner_texts())
            assert "legs keyword+knn" in hybrid.locator(".timing").inner_text()
        finally:
            browser.close()
            p.stop()

    plain = create_app(tiny, config=config, es_config=es_server.config)  # no --sparse-model
    with running(plain) as url:  # the model the contract records is found (#28)
        p, browser, page = _open(sync_api, url, index_name)
        try:
            page.wait_for_selector("#leg-sparse:not(.hidden)")
            _search(page, "capital of france", ["sparse"])
            sparse = page.locator(".column[data-mode='sparse']")
            assert sparse.locator(".hit").first.get_attribute("data-id") == "paris"
            assert page.locator("#sparse-note.hidden").count() == 1
        finally:
            browser.close()
            p.stop()

    gone = f"{index_name}-gone"  # its sparse model is not on this machine: the note
    folder = build_tiny_mlm(tmp_path / "gone-splade")
    Indexer(es, gone, tiny, sparse_encoder=SparseEncoder(folder)).index(DOCS[:2])
    shutil.rmtree(folder)
    config = ServiceConfig(indices=(gone,), api_keys=(KEY,))
    with running(create_app(tiny, config=config, es_config=es_server.config)) as url:
        p, browser, page = _open(sync_api, url, gone)
        try:
            page.wait_for_selector("#sparse-note:not(.hidden)")
            assert "--sparse-model" in page.inner_text("#sparse-note")
            assert page.locator("#leg-sparse.hidden").count() == 1
            _search(page, "capital of france", ["keyword", "hybrid (RRF)"])
            assert page.locator(".column[data-mode='sparse']").count() == 0
        finally:
            browser.close()
            p.stop()
