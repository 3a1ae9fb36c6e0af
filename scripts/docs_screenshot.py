"""Draw the playground screenshot of the docs: ``python scripts/docs_screenshot.py``.

Starts a local noida-db, indexes 400 of Python's docstrings (the quickstart corpus) with the
packaged all-MiniLM-L6-v2, serves them with ``create_app`` on loopback, runs one query in
chromium (Playwright) and saves ``docs/assets/playground.png``. Needs the test extra and
chromium (scripts/install.sh installs both); takes a minute or two on a CPU.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "assets" / "playground.png"
INDEX = "playground-demo"
QUERY = "read a file line by line"


def main() -> int:
    import shutil

    import uvicorn
    from playwright.sync_api import sync_playwright

    from es_semantic import Encoder, Indexer
    from es_semantic.demo.quickstart import stdlib_documents
    from es_semantic.demo.server import free_loopback_port, noida_server
    from es_semantic.elastic.client import make_client
    from es_semantic.service.app import ServiceConfig, create_app

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        print("error: no chromium on PATH (scripts/install.sh installs it)", file=sys.stderr)
        return 1
    encoder = Encoder()
    with noida_server() as server:
        es = make_client(server.config)
        Indexer(es, INDEX, encoder).index(stdlib_documents(400))
        app = create_app(encoder, config=ServiceConfig(indices=(INDEX,)), es_config=server.config)
        port = free_loopback_port()
        web = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=web.run, daemon=True)
        thread.start()
        while not web.started:
            time.sleep(0.05)
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": 1400, "height": 900})
                page.set_default_timeout(300_000)  # a shared CPU encodes slowly
                page.goto(f"http://127.0.0.1:{port}/")
                page.wait_for_selector(f"#index option:text-is('{INDEX}')", state="attached")
                page.fill("#query", QUERY)
                page.fill("#k", "4")
                page.click("#run")
                for label in ("keyword", "kNN", "hybrid (RRF)"):
                    page.wait_for_selector(f".column[data-mode='{label}'] .hit[data-id]")
                OUT.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(OUT))
                browser.close()
        finally:
            web.should_exit = True
            thread.join(timeout=30)
            es.close()
    print(f"wrote {OUT.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
