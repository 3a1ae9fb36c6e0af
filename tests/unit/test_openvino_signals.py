"""OpenVINO's CPU plugin gives the thread that compiles a model an alternate signal stack of
its own and, when the model is freed, puts back the one it replaced only if its own is still
current. Two models freed in the order they were made (a migration's old and new encoders, a
service's, a test's) leave that thread on the first model's unmapped stack, and the next
signal it takes — Ctrl-C — kills the process with SIGSEGV instead of raising
KeyboardInterrupt (so a migration's Ctrl-C could not lift its write block)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("openvino")
pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="Linux signal stacks")

CHILD = textwrap.dedent("""
    import gc, os, signal, sys, time
    from es_semantic import Encoder
    first = Encoder(sys.argv[1], backend="openvino", cache_dir=sys.argv[2])
    second = Encoder(sys.argv[1], backend="openvino", cache_dir=sys.argv[2])
    first.encode_documents(["warm"]), second.encode_documents(["warm"])
    del first; gc.collect()
    del second; gc.collect()
    try:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    except KeyboardInterrupt:
        print("interrupted cleanly")
""")


def test_ctrl_c_after_two_openvino_models_were_freed_is_a_keyboard_interrupt(
    tiny_st_dir: Path, tmp_path: Path
) -> None:
    done = subprocess.run([sys.executable, "-c", CHILD, str(tiny_st_dir), str(tmp_path)],
                          capture_output=True, text=True, timeout=300)  # fmt: skip
    assert done.returncode != -signal.SIGSEGV, "the process died of SIGSEGV on Ctrl-C"
    assert done.returncode == 0 and "interrupted cleanly" in done.stdout, done.stderr[-2000:]
