"""Where the Elasticsearch-API server comes from, for tests and the quickstart.

One order, in one place: ``ES_URL`` (a real cluster) → a testcontainers Elasticsearch 8.x
container when a Docker engine answers → a local ``noida-db`` process (the ``local`` extra) on a
free loopback port with a temporary data dir, stopped by its own PID afterwards.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from es_semantic.config import ESConfig
from es_semantic.errors import ConnectionFailedError, MissingDependencyError

ServerKind = Literal["ES_URL", "testcontainers", "noida-db"]
ES_IMAGE = "docker.elastic.co/elasticsearch/elasticsearch:8.15.3"
START_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class ServerHandle:
    """A server to talk to: how to reach it and where it came from."""

    config: ESConfig
    kind: ServerKind
    description: str
    pid: int | None = None  # the process we started, if any


def docker_engine_answers() -> tuple[bool, str]:
    """Whether a Docker engine answers a ping, with the reason when it does not."""
    try:
        import docker
    except ImportError:
        return False, "the docker package is not installed (pip install 'es-semantic[test]')"
    host = os.environ.get("DOCKER_HOST", "")
    if not host and not Path("/var/run/docker.sock").exists():
        return False, "no Docker engine (no DOCKER_HOST, no /var/run/docker.sock)"
    client = None
    try:
        client = docker.from_env(timeout=3)
        client.ping()
    except Exception as exc:  # docker raises many unrelated types for "no engine"
        return False, f"no Docker engine answers ({type(exc).__name__})"
    finally:
        if client is not None:
            client.close()
    return True, "Docker engine answers"


@contextlib.contextmanager
def resolve_server(env: Mapping[str, str] | None = None) -> Iterator[ServerHandle]:
    """Yield a running server in the documented order; stop what we started on exit."""
    env = os.environ if env is None else env
    if env.get("ES_URL") or env.get("ES_CLOUD_ID"):
        config = ESConfig.from_env(env)
        yield ServerHandle(config, "ES_URL", f"ES_URL {config.display_url()}")
        return
    ok, _reason = docker_engine_answers()
    if ok:
        with testcontainers_server() as handle:
            yield handle
        return
    with noida_server() as handle:
        yield handle


@contextlib.contextmanager
def testcontainers_server(image: str = ES_IMAGE) -> Iterator[ServerHandle]:
    """A single-node Elasticsearch container, security off, removed afterwards."""
    try:
        from testcontainers.community.elasticsearch import ElasticSearchContainer
    except ImportError as exc:
        raise MissingDependencyError("testcontainers", "test", "a Docker Elasticsearch") from exc
    container = ElasticSearchContainer(image, mem_limit="2g")
    container.with_env("xpack.security.enabled", "false")
    container.with_env("ES_JAVA_OPTS", "-Xms1g -Xmx1g")
    with container:
        url = f"http://{container.get_container_host_ip()}:{container.get_exposed_port(9200)}"
        yield ServerHandle(ESConfig(url=url), "testcontainers", f"testcontainers {image} at {url}")


def noida_binary() -> Path:
    """The ``noida-db`` executable shipped by the ``local`` extra."""
    try:
        import noida_db
    except ImportError as exc:
        raise MissingDependencyError("noida-db", "local", "the local ES-API server") from exc
    packaged = Path(noida_db.__file__).parent / "noida-db"
    if packaged.is_file():
        return packaged
    found = shutil.which("noida-db")
    if found is None:
        raise MissingDependencyError("noida-db", "local", "the local ES-API server")
    return Path(found)


def free_loopback_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextlib.contextmanager
def noida_server(data_dir: Path | None = None, port: int | None = None) -> Iterator[ServerHandle]:
    """Start ``noida-db`` on loopback, wait until it answers, stop it by PID on exit."""
    binary = noida_binary()
    port = port or free_loopback_port()
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="noida-")))
        log_path = data_dir / "noida-db.log"
        log = stack.enter_context(open(log_path, "wb"))
        cmd = [
            str(binary), "start", "--only", "elasticsearch", "--host", "127.0.0.1",
            "--elasticsearch-port", str(port), "--data-dir", str(data_dir),
        ]  # fmt: skip
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        stack.callback(_stop, proc)
        url = f"http://127.0.0.1:{port}"
        _wait_until_answers(url, proc, log_path)
        description = f"local noida-db (pid {proc.pid}) at {url}"
        yield ServerHandle(ESConfig(url=url), "noida-db", description, proc.pid)


def _wait_until_answers(url: str, proc: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace")[-500:]
            raise ConnectionFailedError(f"noida-db exited with code {proc.returncode}: {tail}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - loopback
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.1)
    raise ConnectionFailedError(f"noida-db did not answer at {url} within {START_TIMEOUT_S:.0f}s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)
