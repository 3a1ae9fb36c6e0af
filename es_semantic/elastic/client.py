"""Build Elasticsearch clients from an ESConfig and fail fast with a one-line error."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import elastic_transport
import elasticsearch
from elasticsearch import ApiError, AuthenticationException, AuthorizationException, Elasticsearch

from es_semantic.cluster import ClusterInfo
from es_semantic.config import ESConfig
from es_semantic.elastic.calls import Call, Steps, run, run_async
from es_semantic.errors import ConnectionFailedError, MissingDependencyError
from es_semantic.redact import redact

if TYPE_CHECKING:
    from elasticsearch import AsyncElasticsearch

CONNECT_CHECK_TIMEOUT_S = 10.0
CLIENT_VERSION = str(getattr(elasticsearch, "__versionstr__", "?"))


def wrong_client_major(exc: ApiError) -> bool:
    """Whether the cluster refused the client's API version (a 9.x client on an 8.x cluster
    gets 400 ``media_type_header_exception``: "Accept version must be either version 8 or 7")."""
    return exc.meta.status == 400 and "media_type_header_exception" in str(exc)


def fast_serializer() -> dict[str, Any]:
    """The client's orjson serializer where orjson is installed: bulk bodies of vectors are
    serialised several times faster than with the standard library's json."""
    try:
        from elasticsearch.serializer import OrjsonSerializer
    except ImportError:  # orjson missing: the client's default serializer
        return {}
    return {"serializer": OrjsonSerializer()}


def make_client(config: ESConfig, *, check: bool = True) -> Elasticsearch:
    """A sync client; with ``check`` one quick ``GET /`` (no retries) proves it answers."""
    es = Elasticsearch(
        **config.client_kwargs(), **fast_serializer(), retry_on_timeout=True, max_retries=3
    )
    if check:
        try:
            es.options(request_timeout=CONNECT_CHECK_TIMEOUT_S, max_retries=0).info()
        except Exception as exc:
            es.close()
            raise connection_error(config, exc) from None
    return es


def make_async_client(config: ESConfig) -> AsyncElasticsearch:
    """An async client (needs the ``async`` extra); create it inside the loop that uses it."""
    try:
        import aiohttp  # noqa: F401
    except ImportError as exc:
        raise MissingDependencyError("aiohttp", "async", "the async client") from exc
    from elasticsearch import AsyncElasticsearch

    return AsyncElasticsearch(
        **config.client_kwargs(), **fast_serializer(), retry_on_timeout=True, max_retries=3
    )


async def check_async_client(es: AsyncElasticsearch, config: ESConfig) -> None:
    """Async twin of the ``check`` in :func:`make_client`."""
    try:
        await es.options(request_timeout=CONNECT_CHECK_TIMEOUT_S, max_retries=0).info()
    except Exception as exc:
        raise connection_error(config, exc) from None


def connection_error(config: ESConfig, exc: BaseException) -> ConnectionFailedError:
    """Turn a client exception into a one-line, secret-free ConnectionFailedError."""
    where = config.display_url()
    if isinstance(exc, AuthenticationException | AuthorizationException):
        return ConnectionFailedError(redact(credentials_message(config, exc), config.secrets()))
    if isinstance(exc, elastic_transport.TlsError):
        what = "TLS failed (check ES_CA_CERTS or ES_SSL_FINGERPRINT)"
    elif isinstance(exc, elastic_transport.ConnectionTimeout):
        what = "the connection timed out"
    elif isinstance(exc, elastic_transport.ConnectionError):
        what = f"cannot connect ({_root_cause(exc)})"
    elif isinstance(exc, ApiError) and wrong_client_major(exc):
        return ConnectionFailedError(
            f"Elasticsearch at {where} refuses elasticsearch-py {CLIENT_VERSION}: a 9.x client "
            "only talks to Elasticsearch 9.x, and this cluster is older. Install the 8.x client, "
            "which talks to 8.x and 9.x clusters: pip install 'elasticsearch>=8.13,<9'"
        )
    elif isinstance(exc, ApiError):
        what = f"the server answered HTTP {exc.meta.status}"
    else:
        what = f"{type(exc).__name__}: {exc}"
    message = f"Elasticsearch at {where} is not reachable: {what}. Check --es-url / ES_URL."
    return ConnectionFailedError(redact(message, config.secrets()))


def credentials_message(config: ESConfig, exc: BaseException) -> str:
    """The cluster answered but refused the credentials (401) or their rights (403)."""
    where = config.display_url()
    if isinstance(exc, AuthorizationException):
        return (
            f"Elasticsearch at {where} refused GET / to these credentials (HTTP 403): grant "
            "them the monitor cluster privilege, or connect with other credentials"
        )
    given = "refused the credentials given" if config.secrets() else "needs credentials"
    return (
        f"Elasticsearch at {where} {given}: authentication failed (HTTP 401). Pass --api-key "
        "(ES_API_KEY), --username/--password (ES_USERNAME/ES_PASSWORD) or --bearer-token "
        "(ES_BEARER_TOKEN)"
    )


def _root_cause(exc: BaseException) -> str:
    text = " ".join(str(part) for part in (getattr(exc, "message", ""), exc.__cause__) if part)
    text = text or str(exc)
    for marker in ("Connection refused", "Name or service not known", "No route to host"):
        if marker.lower() in text.lower():
            return marker.lower()
    return text.splitlines()[0][:200] if text else type(exc).__name__


def probe_steps() -> Steps[ClusterInfo]:
    """Version (``GET /``) and licence (``GET /_license``; unknown when it is refused or
    absent) of the cluster."""
    info = (yield Call("info")).raise_for_error()
    license_answer = yield Call("license.get")
    license_resp = license_answer.body if license_answer.error is None else None
    return ClusterInfo.from_responses(info, license_resp)


def probe_cluster(es: Elasticsearch) -> ClusterInfo:
    """:func:`probe_steps` with a sync client."""
    return run(es, probe_steps())


async def probe_cluster_async(es: AsyncElasticsearch) -> ClusterInfo:
    """:func:`probe_steps` with an async client."""
    return await run_async(es, probe_steps())
