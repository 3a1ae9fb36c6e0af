"""Connection and cluster findings: how we reach the cluster, its version and licence, and
what follows from them for es-semantic's features (pure)."""

from __future__ import annotations

from es_semantic.cluster import (
    FUSION_MIN_VERSION,
    RESCORE_VECTOR_MIN_VERSION,
    ClusterInfo,
    ServerFusion,
)
from es_semantic.config import EncoderConfig, ESConfig
from es_semantic.doctor.findings import Finding

MIN_TESTED_VERSION = (8, 14, 0)
RESCORE_VERSION = ".".join(str(v) for v in RESCORE_VECTOR_MIN_VERSION)
LOCAL_HOSTS = ("localhost", "127.0.0.1", "[::1]")


def auth_kind(es: ESConfig) -> str:
    if es.api_key:
        return "API key"
    if es.bearer_token:
        return "bearer token"
    if es.username is not None:
        return f"basic auth as {es.username}"
    return "no credentials"


def tls_kind(es: ESConfig) -> str:
    if es.cloud_id or (es.url or "").startswith("https://"):
        if not es.verify_certs:
            return "TLS, certificate NOT verified"
        if es.ssl_fingerprint:
            return "TLS, certificate pinned by fingerprint"
        if es.ca_certs:
            return f"TLS, verified with CA bundle {es.ca_certs}"
        return "TLS, verified with the system CA store"
    return "no TLS (plain http)"


def connection_findings(es: ESConfig, error: str | None) -> list[Finding]:
    """Where and how we connect; whether the cluster answered (one line when it did not)."""
    url = es.display_url()
    how = f"{auth_kind(es)}, {tls_kind(es)}"
    value = {"url": url, "auth": auth_kind(es), "tls": tls_kind(es)}
    host = (es.url or "").partition("://")[2].split("/", 1)[0].rpartition("@")[2]
    local = host.rsplit(":", 1)[0] in LOCAL_HOSTS
    found = []
    if (es.url or "").startswith("http://") and auth_kind(es) != "no credentials" and not local:
        found.append(
            Finding(
                "connection",
                "address",
                "warn",
                f"{url} ({how})",
                "credentials travel unencrypted: use an https:// URL",
                value,
            )
        )
    elif not es.verify_certs:
        found.append(
            Finding(
                "connection",
                "address",
                "warn",
                f"{url} ({how})",
                "set --ca-certs or --ssl-fingerprint to verify the server",
                value,
            )
        )
    else:
        found.append(Finding("connection", "address", "ok", f"{url} ({how})", value=value))
    if error is not None:
        found.append(Finding("connection", "reachable", "fail", error, _connection_fix(error)))
    else:
        found.append(Finding("connection", "reachable", "ok", "the cluster answered GET /"))
    return found


def _connection_fix(error: str) -> str:
    if "pip install" in error:
        return "install the client major the message names"
    if "HTTP 403" in error:
        return "grant these credentials the monitor cluster privilege, or use others"
    if "authentication" in error:
        return "pass the right credentials (--api-key, --username/--password, --bearer-token)"
    if "TLS" in error:
        return "pass the cluster's CA with --ca-certs, or pin it with --ssl-fingerprint"
    return "start Elasticsearch there, or point --es-url / ES_URL at your cluster"


def _dotted(version: tuple[int, int, int]) -> str:
    return ".".join(str(v) for v in version)


def cluster_findings(
    cluster: ClusterInfo, client_version: str, config: EncoderConfig | None
) -> list[Finding]:
    """Version and licence, and what follows from them for es-semantic's features."""
    found = [_version_finding(cluster), _licence_finding(cluster)]
    kinds: tuple[ServerFusion, ...] = ("rrf", "linear")
    found += [_fusion_finding(cluster, kind) for kind in kinds]
    rescore = cluster.rescore_vector
    found.append(
        Finding(
            "cluster",
            "rescore",
            "ok",
            "kNN rescore_vector: yes (--oversample works)"
            if rescore
            else f"kNN rescore_vector: no (--oversample needs {RESCORE_VERSION})",
            value=rescore,
        )
    )
    types = cluster.supported_index_options()
    default = (
        f"; {config.dim}-d vectors get {cluster.default_index_options(config.dim)} by default"
        if config is not None
        else ""
    )
    found.append(
        Finding(
            "cluster",
            "index types",
            "ok",
            f"--index-options {', '.join(types)}{default}",
            value=types,
        )
    )
    excluded = cluster.excludes_source_vectors
    source = (
        "vectors out of _source (this cluster's default from 9.2, and es-semantic's "
        "mapping); --keep-vectors keeps them"
        if excluded
        else "vectors out of _source (es-semantic's mapping); --keep-vectors keeps them"
    )
    found.append(Finding("cluster", "_source", "ok", source, value={"cluster_excludes": excluded}))
    found.append(_client_finding(cluster, client_version))
    return found


def _version_finding(cluster: ClusterInfo) -> Finding:
    name = "Elasticsearch serverless" if cluster.serverless else f"Elasticsearch {cluster.number}"
    if cluster.at_least(MIN_TESTED_VERSION):
        return Finding("cluster", "version", "ok", name, value=cluster.number)
    return Finding(
        "cluster",
        "version",
        "warn",
        f"{name}: older than es-semantic is tested on",
        f"upgrade to {_dotted(MIN_TESTED_VERSION)} or later",
        cluster.number,
    )


def _licence_finding(cluster: ClusterInfo) -> Finding:
    state = cluster.license_state
    value = {"type": cluster.license_type, "status": cluster.license_status}
    if cluster.serverless:
        return Finding("cluster", "licence", "ok", "serverless: every feature", value=value)
    if cluster.license_type is None:
        return Finding(
            "cluster",
            "licence",
            "ok",
            "unknown (GET /_license is absent or refused): "
            "server-side fusion is tried once, a refusal falls back to the client",
            value=value,
        )
    if cluster.license_status not in (None, "active"):
        return Finding(
            "cluster",
            "licence",
            "warn",
            state,
            "renew the licence (server-side fusion falls back to the client meanwhile)",
            value,
        )
    return Finding("cluster", "licence", "ok", state, value=value)


def _fusion_finding(cluster: ClusterInfo, kind: ServerFusion) -> Finding:
    """Server-side ``rrf``/``linear`` retrievers, or why hybrid search fuses on the client."""
    what = "RRF" if kind == "rrf" else "weighted (linear)"
    if cluster.server_fusion(kind):
        option = "server; auto with a stored rrf tuning" if kind == "rrf" else "linear"
        detail = f"server-side {what}: the {kind} retriever (--fusion {option})"
        if cluster.licensed is None:
            detail += ", tried once (licence unknown)"
        return Finding("cluster", f"{kind} fusion", "ok", detail, value="server")
    if not cluster.at_least(FUSION_MIN_VERSION[kind]):
        why = f"needs Elasticsearch {_dotted(FUSION_MIN_VERSION[kind])}"
    else:
        why = f"needs an enterprise or trial licence, this one is {cluster.license_state}"
    return Finding(
        "cluster",
        f"{kind} fusion",
        "ok",
        f"client-side {what}: the {kind} retriever {why}",
        value="client",
    )


def _client_finding(cluster: ClusterInfo, client_version: str) -> Finding:
    major = client_version.split(".", 1)[0]
    cluster_major = cluster.version[0]
    value = {"client": client_version, "use": "8.x" if cluster_major < 9 else "8.x or 9.x"}
    if major == "9" and cluster_major < 9 and not cluster.serverless:
        return Finding(
            "cluster",
            "client",
            "fail",
            f"elasticsearch-py {client_version}: a 9.x client is refused by an 8.x cluster",
            "pip install 'elasticsearch>=8.13,<9'",
            value,
        )
    use = "8.x (9.x is refused)" if cluster_major < 9 and not cluster.serverless else "8.x or 9.x"
    return Finding(
        "cluster",
        "client",
        "ok",
        f"elasticsearch-py {client_version}; this cluster takes {use}",
        value=value,
    )
