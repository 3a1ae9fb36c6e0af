import base64
import io
import logging

import pytest

from es_semantic.config import ESConfig
from es_semantic.errors import ConfigError
from es_semantic.redact import RedactingFilter, redact


def test_from_env_and_overrides():
    env = {"ES_URL": "https://es.example:9200", "ES_API_KEY": "k3y", "ES_CA_CERTS": "/ca.pem"}
    cfg = ESConfig.from_env(env)
    assert cfg.client_kwargs() == {
        "request_timeout": 30.0,
        "hosts": ["https://es.example:9200"],
        "api_key": "k3y",
        "ca_certs": "/ca.pem",
    }
    assert ESConfig.from_env(env, url="http://other:9200").url == "http://other:9200"
    assert ESConfig.from_env({}).url == "http://localhost:9200"
    cloud = ESConfig.from_env({"ES_CLOUD_ID": "name:abc"})
    assert cloud.client_kwargs()["cloud_id"] == "name:abc" and cloud.display_url() == "cloud:name"


def test_validation():
    with pytest.raises(ConfigError, match="must start with http"):
        ESConfig(url="localhost:9200")
    with pytest.raises(ConfigError, match="both"):
        ESConfig(username="elastic")


def test_secrets_are_masked_in_any_form():
    cfg = ESConfig(
        url="https://u:urlpass@es:9200", username="elastic", password="hunter2", api_key="AbC=="
    )
    basic = base64.b64encode(b"elastic:hunter2").decode()
    text = f"auth hunter2 key AbC== header Basic {basic} url https://u:urlpass@es:9200"
    masked = redact(text, cfg.secrets())
    for secret in ("hunter2", "AbC==", basic, "urlpass"):
        assert secret not in masked
    assert cfg.redacted_url() == "https://***@es:9200"
    assert "hunter2" not in repr(cfg) and "AbC==" not in repr(cfg)


def test_logging_filter_masks(caplog):
    logger = logging.getLogger("es_semantic.test")
    handler_filter = RedactingFilter(["s3cret"])
    record = logger.makeRecord("x", logging.INFO, __file__, 1, "password=%s", ("s3cret",), None)
    assert handler_filter.filter(record)
    assert record.getMessage() == "password=***"


def test_logging_filter_masks_the_traceback_too():
    """A record logged with its exception (``log.exception``, ``exc_info=``: the MCP SDK's
    "session crashed", the transport's retries) prints the exception's text: masked too."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.addFilter(RedactingFilter(["s3cret-key"]))
    logger = logging.getLogger("es_semantic.test.traceback")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        try:
            raise RuntimeError("request with api key s3cret-key failed")
        except RuntimeError:
            logger.exception("it crashed")
    finally:
        logger.removeHandler(handler)
    assert "it crashed" in out.getvalue() and "RuntimeError: request with api key ***" in (
        out.getvalue()
    )
    assert "s3cret-key" not in out.getvalue()


def test_config_file_then_env_then_flags(tmp_path):
    from es_semantic.config import load_config_file

    path = tmp_path / "es-semantic.toml"
    path.write_text(
        'model = "/models/e5"\n[elasticsearch]\nurl = "https://file:9200"\napi_key = "filekey"\nrequest_timeout = 5\n'
    )
    values = load_config_file(path)
    assert values["model"] == "/models/e5"
    file_values = {k: v for k, v in values.items() if k != "model"}
    cfg = ESConfig.from_env({}, file_values=file_values)
    assert (cfg.url, cfg.api_key, cfg.request_timeout) == ("https://file:9200", "filekey", 5)
    cfg = ESConfig.from_env({"ES_URL": "https://env:9200"}, file_values=file_values)
    assert (cfg.url, cfg.api_key) == ("https://env:9200", "filekey")
    assert (
        ESConfig.from_env(
            {"ES_URL": "https://env:9200"}, file_values=file_values, url="http://flag:9200"
        ).url
        == "http://flag:9200"
    )


def test_config_file_errors_name_the_file_and_key(tmp_path):
    from es_semantic.config import load_config_file

    bad = tmp_path / "bad.toml"
    bad.write_text("[elasticsearch]\nurll = 'x'\n")
    with pytest.raises(ConfigError, match=r"bad.toml: unknown key\(s\) urll"):
        load_config_file(bad)
    broken = tmp_path / "broken.toml"
    broken.write_text("[elasticsearch\n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config_file(broken)
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config_file(tmp_path / "missing.toml")


def test_cloud_id_builds_an_https_client_for_the_deployment():
    from elasticsearch import Elasticsearch

    cloud_id = "prod:" + base64.b64encode(b"us-east-1.aws.found.io$abc123$def456").decode()
    cfg = ESConfig.from_env({"ES_CLOUD_ID": cloud_id, "ES_API_KEY": "k"})
    client = Elasticsearch(**cfg.client_kwargs())
    node = client.transport.node_pool.all()[0].config
    assert (node.scheme, node.host, node.port) == ("https", "abc123.us-east-1.aws.found.io", 443)
    client.close()


def test_a_9x_client_refused_by_an_8x_cluster_gets_one_line_naming_the_fix():
    """The 400 an 8.x cluster sends a 9.x client (body as Elasticsearch sends it)."""
    from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
    from elasticsearch import BadRequestError

    from es_semantic.config import ESConfig
    from es_semantic.elastic.client import connection_error

    body = {
        "error": {
            "root_cause": [
                {
                    "type": "media_type_header_exception",
                    "reason": "Invalid media-type value on headers [Accept, Content-Type]",
                }
            ],
            "type": "media_type_header_exception",
            "reason": "Invalid media-type value on headers [Accept, Content-Type]",
            "caused_by": {
                "type": "status_exception",
                "reason": "Accept version must be either version 8 or 7, but found 9. "
                "Accept=application/vnd.elasticsearch+json; compatible-with=9",
            },
        },
        "status": 400,
    }
    meta = ApiResponseMeta(400, "1.1", HttpHeaders(), 0.01, NodeConfig("http", "localhost", 9200))
    exc = BadRequestError("media_type_header_exception", meta, body)
    message = str(connection_error(ESConfig(url="http://localhost:9200"), exc))
    assert "\n" not in message
    assert "pip install 'elasticsearch>=8.13,<9'" in message and "9.x client" in message
    other = BadRequestError("illegal_argument_exception", meta, {"error": "x", "status": 400})
    assert "HTTP 400" in str(connection_error(ESConfig(url="http://localhost:9200"), other))
