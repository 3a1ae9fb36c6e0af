"""The version/licence probe on the response shapes real clusters send."""

import pytest

from es_semantic.cluster import ClusterInfo, parse_version
from es_semantic.config import EncoderConfig
from es_semantic.errors import ConfigError, SearchError
from es_semantic.schema.contract import IndexContract
from es_semantic.search.core import plan_search
from es_semantic.search.request import SearchRequest

LUCENE = {"8.13": "9.10.0", "8.14": "9.10.0", "8.15": "9.11.1", "8.16": "9.12.0",
          "8.18": "9.12.1", "8.19": "9.12.2", "9.0": "10.1.0", "9.2": "10.3.0"}  # fmt: skip


def root(number: str, flavor: str = "default") -> dict:
    """``GET /`` as Elasticsearch answers it."""
    return {
        "name": "es01",
        "cluster_name": "docker-cluster",
        "cluster_uuid": "n3Y5mZk2QyG0r5s4dX1cGw",
        "version": {
            "number": number,
            "build_flavor": flavor,
            "build_type": "docker",
            "build_hash": "0b8d8f6b0a2c5e2f3f4e1c0b9a8d7e6f5c4b3a2d",
            "build_date": "2025-01-10T10:08:26.972230187Z",
            "build_snapshot": False,
            "lucene_version": LUCENE.get(number.rsplit(".", 1)[0], "9.12.0"),
            "minimum_wire_compatibility_version": "7.17.0",
            "minimum_index_compatibility_version": "7.0.0",
        },
        "tagline": "You Know, for Search",
    }


def license_body(kind: str, status: str = "active") -> dict:
    """``GET /_license`` as Elasticsearch answers it."""
    body = {
        "status": status,
        "uid": "a1b2c3d4-e5f6-4a5b-8c7d-0e1f2a3b4c5d",
        "type": kind,
        "issue_date": "2025-01-10T10:08:26.972Z",
        "issue_date_in_millis": 1736503706972,
        "max_nodes": 1000,
        "max_resource_units": None,
        "issued_to": "docker-cluster",
        "issuer": "elasticsearch",
        "start_date_in_millis": -1,
    }
    if kind == "trial":
        body["expiry_date"] = "2025-02-09T10:08:26.972Z"
    return {"license": body}


VERSIONS = ["8.13.4", "8.14.3", "8.15.5", "8.16.6", "8.18.8", "8.19.3", "9.0.8", "9.2.1"]
LICENSES = ["basic", "gold", "platinum", "enterprise", "trial"]


@pytest.mark.parametrize("number", VERSIONS)
@pytest.mark.parametrize("kind", LICENSES)
def test_server_rrf_needs_8_14_and_an_enterprise_or_trial_licence(number, kind):
    info = ClusterInfo.from_responses(root(number), license_body(kind))
    expected = parse_version(number) >= (8, 14, 0) and kind in ("enterprise", "trial")
    assert info.server_fusion("rrf") is expected
    assert (info.fusion_refusal("rrf") is None) is expected
    linear = parse_version(number) >= (8, 18, 0) and kind in ("enterprise", "trial")
    assert info.server_fusion("linear") is linear


def test_refusal_names_the_licence_or_the_version():
    basic = ClusterInfo.from_responses(root("8.19.3"), license_body("basic"))
    assert "licence is basic" in basic.fusion_refusal("rrf")
    expired = ClusterInfo.from_responses(root("8.19.3"), license_body("enterprise", "expired"))
    assert not expired.server_fusion("rrf")
    assert "enterprise (expired)" in expired.fusion_refusal("rrf")
    old = ClusterInfo.from_responses(root("8.13.4"), license_body("enterprise"))
    assert "8.14" in old.fusion_refusal("rrf") and "8.13.4" in old.fusion_refusal("rrf")


def test_unknown_licence_is_tried_and_serverless_is_current():
    # a server without the _license API (or a user without monitor rights): try, then remember
    unknown = ClusterInfo.from_responses(root("8.15.3"), None)
    assert unknown.licensed is None and unknown.server_fusion("rrf")
    serverless = ClusterInfo.from_responses(root("8.11.0", "serverless"), None)
    assert serverless.server_fusion("linear") and serverless.rescore_vector


@pytest.mark.parametrize(
    ("number", "key"),
    [("8.14.0", "window_size"), ("8.14.3", "window_size"), ("8.15.0", "rank_window_size"),
     ("8.19.3", "rank_window_size"), ("9.1.0", "rank_window_size")],
)  # fmt: skip
def test_rrf_window_parameter_follows_the_version(number, key):
    info = ClusterInfo.from_responses(root(number), license_body("trial"))
    assert info.rrf_window_key == key
    contract = IndexContract.from_encoder(
        EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3), chunking="none"
    )
    plan = plan_search(SearchRequest("q"), contract, [0.1, 0.2, 0.3], cluster=info)
    rrf = plan.bodies["rrf"]["retriever"]["rrf"]
    assert rrf[key] == 100 and set(rrf) & {"window_size", "rank_window_size"} == {key}


def test_version_parsing():
    assert parse_version("9.0.0-SNAPSHOT") == (9, 0, 0)
    assert parse_version("8.15") == (8, 15, 0)
    assert parse_version("garbage") == (0, 0, 0)


@pytest.mark.parametrize(
    ("number", "option", "ok"),
    [("8.15.3", "int4_hnsw", True), ("8.14.3", "int4_hnsw", False), ("8.15.3", "bbq_hnsw", False),
     ("8.16.0", "bbq_hnsw", True), ("8.19.3", "bbq_flat", True), ("9.1.0", "bbq_disk", False),
     ("9.2.0", "bbq_disk", True), ("8.12.2", "int8_hnsw", True)],
)  # fmt: skip
def test_index_options_need_their_version(number, option, ok):
    info = ClusterInfo.from_responses(root(number), license_body("trial"))  # every licence
    if ok:
        info.check_index_options(option)
    else:
        with pytest.raises(ConfigError, match=rf"{option} needs Elasticsearch .* this cluster is"):
            info.check_index_options(option)


def test_default_index_options_follow_version_and_dims():
    assert ClusterInfo.from_responses(root("8.13.4"), None).default_index_options(384) == "hnsw"
    assert ClusterInfo.from_responses(root("8.15.3"), None).default_index_options(384) == (
        "int8_hnsw"
    )
    nine_one = ClusterInfo.from_responses(root("9.1.0"), None)
    assert nine_one.default_index_options(384) == "bbq_hnsw"
    assert nine_one.default_index_options(128) == "int8_hnsw"


def test_server_fusion_plans():
    contract = IndexContract.from_encoder(
        EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3), chunking="none"
    )
    vector = [0.1, 0.2, 0.3]
    basic = ClusterInfo.from_responses(root("8.19.3"), license_body("basic"))
    licensed = ClusterInfo.from_responses(root("8.19.3"), license_body("enterprise"))
    # basic: auto never sends the rrf retriever, server fails before sending anything
    assert plan_search(SearchRequest("q"), contract, vector, cluster=basic).fusion == "rrf"
    with pytest.raises(SearchError, match=r"enterprise or trial licence.*basic"):
        plan_search(SearchRequest("q", fusion="server"), contract, vector, cluster=basic)
    # linear: the linear retriever where licensed, else client-side weighted fusion
    linear = plan_search(SearchRequest("q", fusion="linear", alpha=0.7), contract, vector,
                         cluster=licensed)  # fmt: skip
    assert linear.fusion == "server-linear"
    legs = linear.bodies["linear"]["retriever"]["linear"]["retrievers"]
    assert [(leg["weight"], leg["normalizer"]) for leg in legs] == [
        (pytest.approx(0.3), "minmax"), (0.7, "minmax")
    ]  # fmt: skip
    assert plan_search(SearchRequest("q", fusion="linear"), contract, vector,
                       cluster=basic).fusion == "weighted"  # fmt: skip
    # a refusal seen at run time is not tried again
    refused = plan_search(SearchRequest("q"), contract, vector, cluster=licensed,
                          refused=frozenset({"rrf"}))  # fmt: skip
    assert refused.fusion == "rrf" and set(refused.bodies) == {"keyword", "knn"}


def test_oversample_needs_8_18():
    contract = IndexContract.from_encoder(
        EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3), chunking="none"
    )
    request = SearchRequest("q", mode="knn", oversample=3.0)
    old = ClusterInfo.from_responses(root("8.15.3"), None)
    with pytest.raises(SearchError, match=r"8\.18"):
        plan_search(request, contract, [0.1, 0.2, 0.3], cluster=old)
    new = ClusterInfo.from_responses(root("8.18.8"), license_body("basic"))
    knn = plan_search(request, contract, [0.1, 0.2, 0.3], cluster=new).bodies["knn"]["knn"]
    assert knn["rescore_vector"] == {"oversample": 3.0}


@pytest.mark.parametrize(("number", "accepts"), [("8.19.3", False), ("9.2.1", False),
                                                 ("9.3.0", True), ("9.4.0-SNAPSHOT", True)])  # fmt: skip
def test_base64_vectors_from_9_3(number: str, accepts: bool) -> None:
    info = ClusterInfo.from_responses({"version": {"number": number}}, None)
    assert info.accepts_base64_vectors is accepts


# bbq_disk: 9.2+ and, on the stack, an Enterprise subscription (Elastic's kNN tuning docs;
# x-pack DiskBBQPlugin checks License.OperationMode.ENTERPRISE, which a trial also grants)
@pytest.mark.parametrize(("kind", "ok"), [("basic", False), ("gold", False),
                                          ("platinum", False), ("enterprise", True),
                                          ("trial", True)])  # fmt: skip
def test_bbq_disk_needs_an_enterprise_or_trial_licence(kind: str, ok: bool) -> None:
    info = ClusterInfo.from_responses(root("9.2.1"), license_body(kind))
    info.check_index_options("bbq_hnsw")  # no licence needed for the others
    assert ("bbq_disk" in info.supported_index_options()) is ok
    if ok:
        info.check_index_options("bbq_disk")
    else:
        with pytest.raises(ConfigError) as refused:
            info.check_index_options("bbq_disk")
        message = str(refused.value)
        assert "\n" not in message
        expected = (
            f"bbq_disk needs an enterprise or trial licence; this cluster's licence is {kind}"
        )
        assert expected in message
        assert "bbq_disk" not in message.split("Choose one of:")[1]


def test_bbq_disk_licence_edge_cases() -> None:
    expired = ClusterInfo.from_responses(root("9.2.1"), license_body("enterprise", "expired"))
    with pytest.raises(ConfigError, match=r"licence is enterprise \(expired\)"):
        expired.check_index_options("bbq_disk")
    # no readable _license: tried, the cluster's own refusal is translated at index creation
    ClusterInfo.from_responses(root("9.2.1"), None).check_index_options("bbq_disk")
    ClusterInfo.from_responses(root("9.2.0", "serverless"), None).check_index_options("bbq_disk")
    # the version still comes first on an old enterprise cluster
    with pytest.raises(ConfigError, match=r"needs Elasticsearch 9\.2\.0"):
        ClusterInfo.from_responses(root("9.1.0"), license_body("enterprise")).check_index_options(
            "bbq_disk"
        )


def _api_error(status: int, body: dict):
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import ApiError

    meta = ApiResponseMeta(
        status, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "localhost", 9200)
    )
    return ApiError(body["error"]["type"], meta, body)


def _security_error(reason: str, **extra: str) -> dict:
    """A 403 ``security_exception`` body as Elasticsearch sends it."""
    cause = {"type": "security_exception", "reason": reason, **extra}
    return {"error": {"root_cause": [cause], **cause}, "status": 403}


# LicenseUtils.newComplianceException("bbq_disk") as a 9.2 basic cluster answers it
BBQ_DISK_403 = _security_error(
    "current license is non-compliant for [bbq_disk]", **{"license.expired.feature": "bbq_disk"}
)


def _create(license_answer, create_answer):
    """Drive create_index_steps for a bbq_disk contract on 9.2; (result or error, apis called)."""
    from es_semantic.elastic.calls import Answer
    from es_semantic.indexing.admin import create_index_steps

    contract = IndexContract.from_encoder(
        EncoderConfig("m", "/m", "fp", "mean", True, 256, "", "", 3), chunking="none",
        index_options="bbq_disk",
    )  # fmt: skip
    answers = {"indices.exists": Answer(False), "info": Answer(root("9.2.1")),
               "license.get": license_answer, "indices.create": create_answer}  # fmt: skip
    steps = create_index_steps("docs", contract)
    called: list = []
    outcome = None
    try:
        while True:
            call = steps.send(outcome)
            called.append(call)
            outcome = answers[call.api]
    except StopIteration as done:
        return done.value, called
    except ConfigError as exc:
        return exc, called


def test_create_index_gates_bbq_disk_by_licence_before_creating() -> None:
    from es_semantic.elastic.calls import Answer

    created = {"acknowledged": True, "shards_acknowledged": True, "index": "docs"}
    ok, called = _create(Answer(license_body("enterprise")), Answer(created))
    assert ok is True
    (create,) = [c for c in called if c.api == "indices.create"]
    vector = create.kwargs["mappings"]["properties"]["embedding"]
    assert vector["index_options"]["type"] == "bbq_disk"
    refused, called = _create(Answer(license_body("basic")), Answer(created))
    assert isinstance(refused, ConfigError) and "licence is basic" in str(refused)
    assert "indices.create" not in [c.api for c in called]


def test_create_index_translates_a_licence_403_into_one_line() -> None:
    from es_semantic.elastic.calls import Answer

    # a user without monitor rights reads no licence: creation is tried and the 403 translated
    unreadable = _security_error("action [cluster:monitor/xpack/license/get] is unauthorized")
    no_licence = Answer(error=_api_error(403, unreadable))
    refused, _ = _create(no_licence, Answer(error=_api_error(403, BBQ_DISK_403)))
    assert isinstance(refused, ConfigError), refused
    message = str(refused)
    assert "\n" not in message and "'docs'" in message
    assert "bbq_disk" in message and "enterprise or trial licence" in message
    # a 403 for missing privileges is one line too, naming the index and the privilege
    denied = _security_error(
        "action [indices:admin/create] is unauthorized for user [ingest] with effective roles "
        "[reader] on indices [docs], this action is granted by the index privileges "
        "[create_index,manage,all]"
    )
    refused, _ = _create(no_licence, Answer(error=_api_error(403, denied)))
    assert isinstance(refused, ConfigError), refused
    assert "\n" not in str(refused) and "'docs'" in str(refused)
    assert "create_index" in str(refused) and "licence" not in str(refused)
