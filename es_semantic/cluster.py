"""What the cluster is and may do, from ``GET /`` and ``GET /_license`` (pure, no I/O).

Probed once per client by the searchers and admin code; every version- or licence-dependent
choice (server-side fusion, the RRF window parameter's name, vector index types, rescoring,
vectors in ``_source``) asks a :class:`ClusterInfo` instead of guessing.

>>> info = ClusterInfo.from_responses({"version": {"number": "8.19.2"}}, {"license":
...     {"type": "basic", "status": "active"}})
>>> info.server_fusion("rrf"), info.rrf_window_key
(False, 'rank_window_size')
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from es_semantic.errors import ConfigError

Version = tuple[int, int, int]
ServerFusion = Literal["rrf", "linear"]
# The licence level Elasticsearch requires for these features (x-pack rank-rrf: ENTERPRISE;
# a trial grants everything). Platinum and basic clusters answer 403 security_exception.
FUSION_LICENSES = frozenset({"enterprise", "trial"})
# Version each server-side fusion retriever appeared in.
FUSION_MIN_VERSION: dict[str, Version] = {"rrf": (8, 14, 0), "linear": (8, 18, 0)}
# dense_vector index_options types and the first version that documents each.
INDEX_OPTIONS_MIN_VERSION: dict[str, Version] = {
    "hnsw": (8, 0, 0),
    "flat": (8, 13, 0),
    "int8_hnsw": (8, 12, 0),
    "int8_flat": (8, 13, 0),
    "int4_hnsw": (8, 15, 0),
    "int4_flat": (8, 15, 0),
    "bbq_hnsw": (8, 16, 0),
    "bbq_flat": (8, 16, 0),
    "bbq_disk": (9, 2, 0),
}
# Index types that also need a licence: on the stack bbq_disk requires an Enterprise
# subscription (Elastic's kNN tuning docs; a trial grants it); basic to platinum answer 403.
# (the same enterprise/trial levels as FUSION_LICENSES).
ENTERPRISE_INDEX_OPTIONS = frozenset({"bbq_disk"})
RESCORE_VECTOR_MIN_VERSION: Version = (8, 18, 0)
# From 9.2 new indices leave dense vectors out of _source (index.mapping.exclude_source_vectors).
EXCLUDE_SOURCE_VECTORS_VERSION: Version = (9, 2, 0)
# From 9.1 float vectors of >= 384 dims default to bbq_hnsw; before that (8.14+) int8_hnsw.
# dense_vector values as base64 strings of big-endian float32 (documented from 9.3)
BASE64_VECTORS_VERSION: Version = (9, 3, 0)
BBQ_DEFAULT_VERSION: Version = (9, 1, 0)
BBQ_DEFAULT_MIN_DIMS = 384
LATEST: Version = (99, 0, 0)


def parse_version(number: str) -> Version:
    """``"8.15.3"`` / ``"9.0.0-SNAPSHOT"`` -> (8, 15, 3); unreadable parts count as 0."""
    parts: list[int] = []
    for piece in number.split("-", 1)[0].split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits) if digits else 0)
    while len(parts) < 3:
        parts.append(0)
    return (parts[0], parts[1], parts[2])


def _dotted(version: Version) -> str:
    return ".".join(str(v) for v in version)


@dataclass(frozen=True)
class ClusterInfo:
    """Version and licence of a cluster, and what follows from them."""

    number: str
    version: Version
    license_type: str | None = None  # None: no readable _license API (licence unknown)
    license_status: str | None = None
    serverless: bool = False

    @classmethod
    def from_responses(
        cls, info: Mapping[str, Any], license_resp: Mapping[str, Any] | None
    ) -> ClusterInfo:
        """From the bodies of ``GET /`` and ``GET /_license`` (None when that failed)."""
        raw = info.get("version") or {}
        number = str(raw.get("number", "0.0.0"))
        serverless = raw.get("build_flavor") == "serverless"
        lic = (license_resp or {}).get("license")
        lic_type = str(lic.get("type")).lower() if isinstance(lic, Mapping) else None
        status = str(lic.get("status")).lower() if isinstance(lic, Mapping) else None
        version = LATEST if serverless else parse_version(number)
        return cls(number, version, lic_type, status, serverless)

    def at_least(self, version: Version) -> bool:
        return self.version >= version

    @property
    def licensed(self) -> bool | None:
        """Whether the licence grants enterprise search features; None when unknown."""
        if self.serverless:
            return True
        if self.license_type is None:
            return None
        return self.license_type in FUSION_LICENSES and self.license_status in (None, "active")

    def server_fusion(self, kind: ServerFusion) -> bool:
        """Whether to send the ``rrf``/``linear`` retriever at all. An unknown licence (a
        server without the _license API) is tried once; the searchers remember a refusal."""
        return self.at_least(FUSION_MIN_VERSION[kind]) and self.licensed is not False

    def fusion_refusal(self, kind: ServerFusion) -> str | None:
        """Why the ``kind`` retriever cannot run here, in one line; None when it may."""
        minimum = FUSION_MIN_VERSION[kind]
        if not self.at_least(minimum):
            return (
                f"the {kind} retriever needs Elasticsearch {_dotted(minimum)} or later; this "
                f"cluster is {self.number}: use client-side fusion (--fusion rrf or weighted)"
            )
        if self.licensed is False:
            return (
                f"the {kind} retriever needs an enterprise or trial licence; this cluster's "
                f"licence is {self.license_state}: use client-side fusion (--fusion rrf or "
                "weighted)"
            )
        return None

    @property
    def license_state(self) -> str:
        """The licence as a message names it: ``basic``, ``enterprise (expired)``, ``unknown``."""
        if self.license_status in (None, "active"):
            return self.license_type or "unknown"
        return f"{self.license_type} ({self.license_status})"

    @property
    def rrf_window_key(self) -> str:
        """8.14 called the rrf retriever's window ``window_size``; 8.15 renamed it."""
        return "window_size" if self.version[:2] == (8, 14) else "rank_window_size"

    @property
    def rescore_vector(self) -> bool:
        """kNN ``rescore_vector`` (oversampling quantized indices) is documented from 8.18."""
        return self.at_least(RESCORE_VECTOR_MIN_VERSION)

    @property
    def excludes_source_vectors(self) -> bool:
        """New indices leave vectors out of ``_source`` by default (9.2+)."""
        return self.at_least(EXCLUDE_SOURCE_VECTORS_VERSION)

    @property
    def accepts_base64_vectors(self) -> bool:
        """Whether bulk bodies may carry vectors as base64 float32 (9.3+)."""
        return self.at_least(BASE64_VECTORS_VERSION)

    def check_index_options(self, index_options: str) -> None:
        """Refuse a vector index type this cluster's version or licence does not allow (an
        unknown licence is tried: index creation translates the cluster's own 403)."""
        minimum = INDEX_OPTIONS_MIN_VERSION.get(index_options)
        if minimum is not None and not self.at_least(minimum):
            why = f"needs Elasticsearch {_dotted(minimum)} or later; this cluster is {self.number}"
        elif not self._licence_allows(index_options):
            why = (
                "needs an enterprise or trial licence; this cluster's licence is "
                f"{self.license_state}"
            )
        else:
            return
        raise ConfigError(
            f"--index-options {index_options} {why}. Choose one of: "
            f"{', '.join(self.supported_index_options())}"
        )

    def supported_index_options(self) -> list[str]:
        return [
            name
            for name, minimum in INDEX_OPTIONS_MIN_VERSION.items()
            if self.at_least(minimum) and self._licence_allows(name)
        ]

    def _licence_allows(self, index_options: str) -> bool:
        """False only where the licence is known and lacks what ``index_options`` needs."""
        return index_options not in ENTERPRISE_INDEX_OPTIONS or self.licensed is not False

    def default_index_options(self, dims: int) -> str:
        """What a ``dense_vector`` of ``dims`` floats gets when no index_options are sent."""
        if self.at_least(BBQ_DEFAULT_VERSION) and dims >= BBQ_DEFAULT_MIN_DIMS:
            return "bbq_hnsw"
        if self.at_least((8, 14, 0)):
            return "int8_hnsw"
        return "hnsw"
