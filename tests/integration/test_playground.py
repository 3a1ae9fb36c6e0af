"""The playground in a real browser (Debian's chromium driven by Playwright) against the real
service, the packaged model and the real ES-API server; and huggingface_hub's InferenceClient
against /embed."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from es_semantic import CrossEncoder, Indexer
from tests.integration.test_service import KEY, running
from tests.needs import missing, need_module

pytest.importorskip("uvicorn", reason="the serve extra is not installed")
from es_semantic.service.app import ServiceConfig, create_app

TOPICS = ["heart disease and blood pressure", "protein folding in cells",
          "river floods after heavy rainfall", "neural networks for images",
          "coffee and sleep quality", "volcano eruptions and ash clouds"]  # fmt: skip
REPORT = {"keyword": {"ndcg@10": 0.69, "recall@100": 0.92, "p50_ms": 3.0},
          "knn": {"ndcg@10": 0.67, "recall@100": 0.94, "p50_ms": 9.0},
          "hybrid": {"ndcg@10": 0.72, "recall@100": 0.96, "p50_ms": 12.0}}  # fmt: skip


def chromium_path() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        missing("no chromium on PATH (scripts/install.sh installs Debian's chromium)")
    return path


@pytest.fixture
def playground(es, es_server, index_name, minilm, tiny_cross_encoder_dir):
    docs = [{"id": f"d{i}", "title": t, "text": f"A long study of {t}. " * 3 + f"Case {i}."}
            for i, t in enumerate(TOPICS * 2)]  # fmt: skip
    docs.append({"id": "xss", "title": "<img src=x onerror=window.pwned=1> volcano",
                 "text": "<script>window.pwned=2</script> ash"})  # fmt: skip
    Indexer(es, index_name, minilm).index(docs)  # passages: the default layout
    config = ServiceConfig(indices=(index_name,), api_keys=(KEY,), eval_report=REPORT)
    app = create_app(minilm, config=config, es_config=es_server.config,
                     reranker=CrossEncoder(tiny_cross_encoder_dir))  # fmt: skip
    with running(app) as url:
        yield url, index_name


@pytest.mark.slow
def test_playground_compares_every_mode_in_a_real_browser(playground, tmp_path):
    sync_api = need_module("playwright.sync_api", "pip install 'es-semantic[test]'")
    url, index = playground
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 1000})
        page.goto(url + "/")
        # the data routes need the key: the page says so until one is given
        page.wait_for_selector(".error")
        assert "401" in page.inner_text("#columns")
        page.fill("#api-key", KEY)
        page.dispatch_event("#api-key", "change")
        page.wait_for_selector(f"#index option:text-is('{index}')", state="attached")
        page.fill("#query", "volcano ash")
        page.fill("#k", "5")
        page.click("#run")
        labels = ["keyword", "kNN", "hybrid (RRF)", "hybrid + rerank"]
        for label in labels:
            page.wait_for_selector(f".column[data-mode='{label}'] .hit[data-id]")
        columns = {label: page.locator(f".column[data-mode='{label}']") for label in labels}
        for label, column in columns.items():
            hits = column.locator(".hit[data-id]")
            assert 1 <= hits.count() <= 5, label
            assert " ms" in column.locator(".timing").inner_text()  # the stages' times
        knn_first = columns["kNN"].locator(".hit .title").first.inner_text()
        assert "volcano" in knn_first.lower()
        hybrid = columns["hybrid (RRF)"].locator(".hit .legs").all_inner_texts()
        assert any("keyword #" in t and "knn #" in t for t in hybrid)  # per-leg ranks/scores
        assert any(
            "rerank" in t for t in columns["hybrid + rerank"].locator(".legs").all_inner_texts()
        )
        assert columns["kNN"].locator(".passage").count() >= 1  # the best passage
        # document text is shown as text, never run as HTML
        assert page.evaluate("window.pwned") is None
        assert "<img src=x" in page.inner_text("body")
        page.screenshot(path=str(tmp_path / "playground.png"), full_page=True)
        assert (tmp_path / "playground.png").stat().st_size > 10_000

        page.click("#tab-eval")  # the report given at start, as bars
        for metric, modes in (("ndcg@10", 3), ("p50_ms", 3)):
            assert page.locator(f".metric[data-metric='{metric}'] .bar").count() == modes
        uploaded = tmp_path / "other.json"
        uploaded.write_text(json.dumps({"weighted": {"ndcg@10": 0.73}, "bm25": {"ndcg@10": 0.6}}))
        page.set_input_files("#report-file", str(uploaded))
        page.wait_for_selector(".bar .name:text-is('weighted')")
        assert page.locator(".metric[data-metric='ndcg@10'] .bar").count() == 2
        page.screenshot(path=str(tmp_path / "eval.png"), full_page=True)
        browser.close()


@pytest.mark.slow
def test_huggingface_inference_client_reads_embed(playground, minilm, monkeypatch):
    hub = need_module("huggingface_hub", "pip install 'es-semantic[test]'")
    # the suite runs with HF_HUB_OFFLINE=1 (no model downloads); this call stays on loopback
    monkeypatch.setattr(hub.constants, "HF_HUB_OFFLINE", False)
    url, _ = playground
    client = hub.InferenceClient(model=f"{url}/embed", token=KEY)
    got = np.asarray(client.feature_extraction("volcano ash clouds"))
    want = minilm.encode_documents(["volcano ash clouds"])
    np.testing.assert_allclose(got.reshape(want.shape), want, atol=1e-6)
