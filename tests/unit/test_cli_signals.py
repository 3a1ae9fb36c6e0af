"""terminate_as_interrupt: SIGTERM raised as Ctrl-C inside, the previous handler after.

The signal is sent inside a fresh interpreter: the test process has loaded native libraries
(Ray's core worker, ONNX Runtime, OpenVINO) whose own signal handlers and threads a real SIGTERM
to it would meet — a CI run segfaulted there — while a user's command starts clean.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import threading

import pytest

from es_semantic.cli.common import terminate_as_interrupt

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.kill(SIGTERM) ends the process")

_IN_A_FRESH_PROCESS = textwrap.dedent(
    """
    import os, signal
    from es_semantic.cli.common import Terminated, terminate_as_interrupt

    def before_handler(signum, frame):
        raise SystemExit("the previous handler ran inside")

    signal.signal(signal.SIGTERM, before_handler)
    cleaned = []
    try:
        with terminate_as_interrupt():
            try:
                os.kill(os.getpid(), signal.SIGTERM)
                for _ in range(100000):  # the handler runs between bytecodes
                    pass
            finally:
                cleaned.append(True)
    except KeyboardInterrupt as caught:
        print("terminated" if isinstance(caught, Terminated) else type(caught).__name__)
    print("cleaned" if cleaned == [True] else "not cleaned")
    print("restored" if signal.getsignal(signal.SIGTERM) is before_handler else "not restored")
    """
)


def test_sigterm_inside_raises_a_keyboard_interrupt_and_the_handler_is_restored():
    ran = subprocess.run([sys.executable, "-c", _IN_A_FRESH_PROCESS], capture_output=True,
                         text=True, timeout=60, check=False)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["terminated", "cleaned", "restored"]


def test_outside_the_main_thread_nothing_changes():
    before = signal.getsignal(signal.SIGTERM)
    seen = []

    def run():
        with terminate_as_interrupt():
            seen.append(signal.getsignal(signal.SIGTERM))

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    assert seen == [before]
