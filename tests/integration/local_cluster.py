"""``python -m tests.integration.local_cluster STATE``: one local noida-db for several pytest
runs (scripts/test.sh runs the integration suite against it two and three times in a row).

Writes ``URL PID`` to STATE once the server answers, then holds it until SIGTERM or SIGINT,
and stops it (by its PID) on the way out. The runs get ``ES_URL=URL`` and
``ES_SEMANTIC_TEST_SERVER_PID=PID``, so the session still knows the server is a local noida-db
(tests/integration/conftest.py), as when it starts one itself.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path
from types import FrameType

from es_semantic.demo.server import noida_server


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print("usage: python -m tests.integration.local_cluster STATE-FILE", file=sys.stderr)
        return 2
    state = Path(argv[1])
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    with noida_server() as handle:
        partial = state.with_suffix(".partial")
        partial.write_text(f"{handle.config.url} {handle.pid}\n")
        partial.replace(state)  # whole or absent, for the shell polling it
        while not stop.wait(0.5):
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
