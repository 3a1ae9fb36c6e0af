"""terminate_as_interrupt: SIGTERM raised as Ctrl-C inside, the previous handler after."""

from __future__ import annotations

import os
import signal
import sys
import threading

import pytest

from es_semantic.cli.common import Terminated, terminate_as_interrupt

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="os.kill(SIGTERM) ends the process")


def test_sigterm_inside_raises_a_keyboard_interrupt_and_the_handler_is_restored():
    before = signal.getsignal(signal.SIGTERM)
    cleaned = []
    with pytest.raises(KeyboardInterrupt) as caught, terminate_as_interrupt():
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            for _ in range(1000):  # the handler runs between bytecodes
                pass
        finally:
            cleaned.append(True)
    assert isinstance(caught.value, Terminated) and cleaned == [True]
    assert signal.getsignal(signal.SIGTERM) == before


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
