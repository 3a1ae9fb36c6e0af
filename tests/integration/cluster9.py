"""Make the local server answer like a basic-licence Elasticsearch 9.x cluster.

The local ES-API server reports 8.15 and takes any ``compatible-with`` header, so the 9.x
client against it is a pair that cannot exist. This rule for
:func:`tests.integration.fault_proxy.fault_proxy` answers as a basic-licence 9.1 cluster does
and forwards the rest:

- ``GET /`` reports 9.1.5; ``GET /_license`` a basic, active licence; a search with an ``rrf``
  or ``linear`` retriever gets the 403 ``security_exception`` (as basic_cluster.BasicCluster);
- the 9.x client's ``compatible-with=9`` headers are accepted (and 8, as Elasticsearch 9 takes
  the 8.x client's) and reach the 8.15 server behind as ``compatible-with=8``
  (:meth:`Cluster9.forward_headers`); any other version gets the 400 a 9.x cluster sends.

9.1, not 9.2+: from 9.2 a cluster leaves vectors out of ``_source`` and from 9.3 takes base64
vectors, which the server behind does not do. ``ES_SEMANTIC_TEST_EMULATE=9.x`` runs the whole
integration suite through it (scripts/test.sh: the pass with elasticsearch-py 9.x).
"""

from __future__ import annotations

import copy
import re
from typing import Any

from tests.integration.basic_cluster import ROOT, BasicCluster

VERSION = "9.1.5"
_COMPAT_9 = re.compile(r"compatible-with=9\b")


def root_9() -> dict[str, Any]:
    """``GET /`` of a 9.1 cluster (same shape as 8.19's)."""
    root = copy.deepcopy(ROOT)
    root["cluster_uuid"] = "basic-licence-9-emulation"
    root["version"].update(
        number=VERSION,
        lucene_version="10.2.2",
        build_date="2025-10-01T00:00:00.000Z",
        minimum_wire_compatibility_version="8.19.0",
        minimum_index_compatibility_version="8.0.0",
    )
    return root


class Cluster9(BasicCluster):
    """BasicCluster answering as 9.1.5 and speaking the 9.x client's media types."""

    root = root_9()
    compatible_majors = (8, 9)

    def forward_headers(self, headers: dict[str, str]) -> dict[str, str]:
        """``compatible-with=9`` becomes ``=8`` for the 8.15 server behind."""
        return {k: _COMPAT_9.sub("compatible-with=8", v) for k, v in headers.items()}
