"""`es-semantic doctor` against the real ES-API server, and through proxies answering like a
basic-licence and a trial-licence Elasticsearch 8.19."""

from __future__ import annotations

import json
import time
from typing import Any

import elasticsearch
from click.testing import CliRunner

from es_semantic.cli import cli
from es_semantic.elastic.client import probe_cluster
from es_semantic.encoding.encoder import Encoder
from es_semantic.indexing.indexer import Indexer
from tests.integration.basic_cluster import LICENSE, BasicCluster
from tests.integration.fault_proxy import fault_proxy
from tests.tiny_models import build_tiny_bert

CLIENT_MAJOR = int(elasticsearch.__versionstr__.split(".")[0])
DOCS = [{"id": str(i), "text": f"note {i} about search"} for i in range(4)]


class TrialCluster(BasicCluster):
    """8.19 as BasicCluster answers it, with an active trial licence."""

    def __call__(self, method: str, path: str, body: bytes, headers: Any) -> Any:
        answer = super().__call__(method, path, body, headers)
        if path.split("?", 1)[0].rstrip("/") == "/_license" and answer is not None:
            return 200, {"license": {**LICENSE["license"], "type": "trial"}}
        return answer


def doctor(url: str, model: Any, *args: str) -> tuple[int, dict[str, Any]]:
    result = CliRunner().invoke(
        cli, ["doctor", "--json", "--es-url", url, "--model", str(model), *args]
    )
    return result.exit_code, json.loads(result.stdout)  # stderr may hold model notes


def checks(out: dict[str, Any], section: str) -> dict[str, dict[str, Any]]:
    return {c["check"]: c for c in out["checks"] if c["section"] == section}


def test_doctor_on_the_session_server_checks_an_index(es, es_server, index_name, tiny_st_dir):
    Indexer(es, index_name, Encoder(tiny_st_dir)).index(DOCS)
    code, out = doctor(es_server.config.url, tiny_st_dir, "--index", index_name)
    assert code == 0 and out["exit_code"] == 0, out
    probe = probe_cluster(es)
    cluster = checks(out, "cluster")
    assert cluster["version"]["value"] == probe.number
    assert cluster["licence"]["value"]["type"] == probe.license_type
    expected = "server" if probe.server_fusion("rrf") else "client"
    assert cluster["rrf fusion"]["value"] == expected
    index = checks(out, f"index {index_name}")
    assert index["documents"]["value"]["count"] == 4
    assert index["this model"]["status"] == "ok"
    assert checks(out, "model")["vectors"]["value"]["dims"] == 32


def test_basic_and_trial_licences_differ_on_the_licence_lines(es, es_server, tiny_st_dir):
    """The session server (local, or the basic 8.19 emulation), a basic-licence 8.19 proxy and
    a trial-licence one: the licence and fusion lines follow each cluster's licence."""
    outputs = {}
    for name, rule in (("basic", BasicCluster), ("trial", TrialCluster)):
        with fault_proxy(es_server.config.url, rule(es_server.config.url)) as proxy:
            outputs[name] = doctor(proxy.url, tiny_st_dir)
    if CLIENT_MAJOR >= 9:  # an 8.19 cluster refuses the 9.x client: the doctor names the fix
        for code, out in outputs.values():
            (failed,) = [c for c in out["checks"] if c["status"] == "fail"]
            assert code == 1 and "pip install 'elasticsearch>=8.13,<9'" in failed["detail"]
        return
    basic, trial = (checks(outputs[n][1], "cluster") for n in ("basic", "trial"))
    assert outputs["basic"][0] == outputs["trial"][0] == 0
    assert (basic["licence"]["detail"], trial["licence"]["detail"]) == ("basic", "trial")
    assert basic["rrf fusion"]["value"] == "client" and trial["rrf fusion"]["value"] == "server"
    assert basic["linear fusion"]["value"] == "client"
    assert trial["linear fusion"]["value"] == "server"
    assert basic["version"] == trial["version"] and basic["rescore"]["value"] is True
    _, session = doctor(es_server.config.url, tiny_st_dir)
    here = checks(session, "cluster")
    if probe_cluster(es).license_type != "basic":  # the local server: no _license API
        assert here["licence"]["detail"] != basic["licence"]["detail"]
    else:  # the basic-licence emulation of the whole session
        assert here["licence"] == basic["licence"]


def test_an_index_made_with_another_model_is_flagged(es, es_server, index_name, tiny_st_dir,
                                                      tmp_path):  # fmt: skip
    Indexer(es, index_name, Encoder(tiny_st_dir)).index(DOCS)
    other = build_tiny_bert(tmp_path / "other-model", seed=1)
    result = CliRunner().invoke(cli, ["doctor", "--index", index_name, "--es-url",
                                      es_server.config.url, "--model", str(other)])  # fmt: skip
    assert result.exit_code == 1, result.output
    (line,) = [ln for ln in result.output.splitlines() if "this model" in ln]
    assert line.split()[0] == "fail" and f"--model {tiny_st_dir.name}" in line, line
    assert "Traceback" not in result.output


def test_a_missing_index_is_one_fail_line(es_server, tiny_st_dir):
    code, out = doctor(es_server.config.url, tiny_st_dir, "--index", "no-such-index-doctor")
    index = checks(out, "index no-such-index-doctor")
    assert code == 1 and list(index) == ["contract"]
    assert "does not exist" in index["contract"]["detail"] and index["contract"]["fix"]


class SlowCount:
    """The index's count held for ``seconds`` before it is forwarded: a cluster that hangs."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds

    def __call__(self, method: str, path: str, body: bytes, headers: Any) -> Any:
        if path.split("?", 1)[0].endswith("/_count"):
            time.sleep(self.seconds)
        return None


def test_an_index_read_that_hangs_is_a_fail_line_not_a_long_wait(
    es, es_server, index_name, tiny_st_dir, monkeypatch
):
    """The doctor reads --index with its own short timeout and no retries: the client's
    (30 s, retried) would keep a first-hour user waiting minutes on a hanging cluster."""
    from es_semantic.doctor import gather

    Indexer(es, index_name, Encoder(tiny_st_dir), chunking="none").index(DOCS)
    monkeypatch.setattr(gather, "CONNECT_CHECK_TIMEOUT_S", 1.0)
    with fault_proxy(es_server.config.url, SlowCount(4.0)) as proxy:
        started = time.monotonic()
        code, out = doctor(proxy.url, tiny_st_dir, "--index", index_name)
        elapsed = time.monotonic() - started
    failed = checks(out, f"index {index_name}")["contract"]
    assert code == 1 and failed["status"] == "fail", failed
    assert "reading it failed" in failed["detail"] and "health" in failed["fix"], failed
    assert elapsed < 4.0, f"doctor waited {elapsed:.1f} s on the hanging index read"
