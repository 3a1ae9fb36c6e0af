"""Frozen configuration dataclasses, validated at construction."""

from __future__ import annotations

import base64
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from es_semantic.errors import ConfigError

PoolingMode = Literal["cls", "mean", "max", "mean_first_last", "lasttoken"]
POOLING_MODES: tuple[str, ...] = get_args(PoolingMode)

DEFAULT_ES_URL = "http://localhost:9200"
ENV_VARS = {
    "url": "ES_URL",
    "api_key": "ES_API_KEY",
    "username": "ES_USERNAME",
    "password": "ES_PASSWORD",
    "bearer_token": "ES_BEARER_TOKEN",
    "ca_certs": "ES_CA_CERTS",
    "ssl_fingerprint": "ES_SSL_FINGERPRINT",
    "cloud_id": "ES_CLOUD_ID",
}
FILE_KEYS = (*ENV_VARS, "verify_certs", "request_timeout")


def load_config_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``[elasticsearch]`` table of a TOML file (keys as ESConfig fields), checked.

    ``model = "..."`` at the top level is returned under ``"model"``.
    """
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        import tomli as tomllib
    try:
        with open(path, "rb") as handle:
            data = tomllib.load(handle)
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    section = data.get("elasticsearch", {})
    unknown = sorted(set(section) - set(FILE_KEYS)) + sorted(set(data) - {"elasticsearch", "model"})
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown key(s) {', '.join(unknown)}; [elasticsearch] takes "
            f"{', '.join(FILE_KEYS)}, and 'model' may stand at the top"
        )
    values = dict(section)
    if "model" in data:
        values["model"] = data["model"]
    return values


@dataclass(frozen=True)
class ESConfig:
    """How to reach an Elasticsearch cluster.

    >>> ESConfig(url="http://localhost:9200").redacted_url()
    'http://localhost:9200'
    """

    url: str | None = DEFAULT_ES_URL
    api_key: str | None = field(default=None, repr=False)
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    bearer_token: str | None = field(default=None, repr=False)
    ca_certs: str | None = None
    ssl_fingerprint: str | None = None
    cloud_id: str | None = None
    verify_certs: bool = True
    request_timeout: float = 30.0

    def __post_init__(self) -> None:
        if not self.url and not self.cloud_id:
            raise ConfigError("no Elasticsearch address: set --es-url / ES_URL or --cloud-id")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ConfigError(
                f"ES_URL={self.url!r} must start with http:// or https:// "
                "(for example http://localhost:9200)"
            )
        if (self.username is None) != (self.password is None):
            raise ConfigError("basic auth needs both --username/ES_USERNAME and --password")
        if self.request_timeout <= 0:
            raise ConfigError(f"request_timeout={self.request_timeout} must be > 0")

    @classmethod
    def from_env(
        cls,
        env: Mapping[str, str] | None = None,
        *,
        file_values: Mapping[str, Any] | None = None,
        **overrides: Any,
    ) -> ESConfig:
        """Settings from a config file (see :func:`load_config_file`), then the environment
        (ES_URL, ES_API_KEY, ES_USERNAME, ES_PASSWORD, ES_BEARER_TOKEN, ES_CA_CERTS,
        ES_SSL_FINGERPRINT, ES_CLOUD_ID), then explicit non-None ``overrides``: later wins."""
        env = os.environ if env is None else env
        values: dict[str, Any] = dict(file_values or {})
        values.update({key: env[var] for key, var in ENV_VARS.items() if env.get(var)})
        values.update({k: v for k, v in overrides.items() if v is not None})
        if not values.get("url"):
            values["url"] = None if values.get("cloud_id") else DEFAULT_ES_URL
        return cls(**values)

    def display_url(self) -> str:
        """The address for messages: URL without credentials, or the cloud id's name."""
        if self.url:
            return self.redacted_url()
        return f"cloud:{(self.cloud_id or '').split(':', 1)[0]}"

    def redacted_url(self) -> str:
        """The URL with any user:password@ part masked."""
        url = self.url or ""
        scheme, sep, rest = url.partition("://")
        if sep and "@" in rest.split("/", 1)[0]:
            # up to the last @: the client reads u:p@ss@host as the password p@ss, and a
            # password with an unencoded / is masked whole (its path masked with it)
            rest = "***@" + rest.rpartition("@")[2]
        return f"{scheme}{sep}{rest}"

    def secrets(self) -> list[str]:
        """Every secret value held, for masking in logs and errors."""
        found = [self.api_key, self.password, self.bearer_token]
        if self.username is not None and self.password:
            # what an Authorization: Basic header would carry
            found.append(base64.b64encode(f"{self.username}:{self.password}".encode()).decode())
        url = self.url or ""
        netloc = url.partition("://")[2].split("/", 1)[0]
        if "@" in netloc:  # the password the client sends: up to the last @ of the host part
            found.append(netloc.rpartition("@")[0].partition(":")[2])
        return [s for s in found if s]

    def client_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Elasticsearch(...)`` / ``AsyncElasticsearch(...)``."""
        kwargs: dict[str, Any] = {"request_timeout": self.request_timeout}
        if self.cloud_id:
            kwargs["cloud_id"] = self.cloud_id
        else:
            kwargs["hosts"] = [self.url]
        if self.api_key:
            kwargs["api_key"] = self.api_key
        elif self.bearer_token:
            kwargs["bearer_auth"] = self.bearer_token
        elif self.username is not None and self.password is not None:
            kwargs["basic_auth"] = (self.username, self.password)
        if self.ca_certs:
            kwargs["ca_certs"] = self.ca_certs
        if self.ssl_fingerprint:
            kwargs["ssl_assert_fingerprint"] = self.ssl_fingerprint
        if not self.verify_certs:
            kwargs["verify_certs"] = False
        return kwargs


@dataclass(frozen=True)
class EncoderConfig:
    """Everything that decides which vector a text gets (recorded in the index contract)."""

    model_name: str
    model_path: str
    fingerprint: str
    pooling: PoolingMode
    normalize: bool
    max_length: int
    query_prefix: str
    document_prefix: str
    dim: int
    backend: str = "torch"  # how the vectors were computed: recorded, not checked
    quantize: str = "none"
    precision: str = "float32"  # the precision that ran (float32, bfloat16, float16): recorded
    # what the vectors can be made from: "text", or "text+image" (a CLIP model: texts and
    # images in one space); checked against the index contract
    modality: str = "text"

    def ran(self) -> dict[str, str]:
        """Model, backend, quantisation and precision that ran: the ``encoder`` key of every
        ``--json`` output and of the service's answers."""
        return {"model": self.model_name, "backend": self.backend, "quantize": self.quantize,
                "precision": self.precision}  # fmt: skip

    def __post_init__(self) -> None:
        if self.pooling not in POOLING_MODES:
            raise ConfigError(f"pooling={self.pooling!r} is not one of {', '.join(POOLING_MODES)}")
        if self.max_length < 2:
            raise ConfigError(f"max_length={self.max_length} must be >= 2")
