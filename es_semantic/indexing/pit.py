"""Every hit of an index, a page at a time, through a point in time (PIT).

A PIT is a consistent snapshot: pages read with ``search_after`` on ``_shard_doc`` see the index
as it was when the PIT opened, whatever is written meanwhile. Each page's search renews the
PIT's ``keep_alive`` and the next page uses the most recent ``pit_id`` (it may change per
response); the PIT is closed when the scan ends, fails or is abandoned. A page never comes
from some shards only: partial results are refused (``allow_partial_search_results``), and a
page that still counts failed shards raises :class:`~es_semantic.errors.SearchError`.

Written once as :mod:`es_semantic.elastic.calls` steps (open, one page, close);
:func:`pit_pages` drives them with a sync client (an async shell would drive the same steps
with ``run_async``).
"""

from __future__ import annotations

import logging
from collections.abc import Generator, Mapping
from typing import Any

from elastic_transport import TransportError

from es_semantic.elastic.calls import Call, Steps, run
from es_semantic.errors import SearchError

log = logging.getLogger(__name__)
KEEP_ALIVE = "5m"

Hit = dict[str, Any]


def open_steps(index: str, keep_alive: str) -> Steps[str]:
    """Open a PIT on ``index``; its id."""
    answer = yield Call("open_point_in_time", {"index": index, "keep_alive": keep_alive})
    return str(answer.raise_for_error()["id"])


def page_request(
    pit: str, after: list[Any] | None, keep_alive: str, page_size: int, search: Mapping[str, Any]
) -> dict[str, Any]:
    """The search for the page after ``after`` (None: the first), renewing the keep-alive.
    ``search``: the rest of the request (``query``, ``source_includes``, ...)."""
    return {
        **search,
        "pit": {"id": pit, "keep_alive": keep_alive},
        "size": page_size,
        "sort": ["_shard_doc"],
        "search_after": after,
        "track_total_hits": False,
        "allow_partial_search_results": False,  # a lost shard: an error, not a short page
    }


def page_steps(
    pit: str, after: list[Any] | None, keep_alive: str, page_size: int, search: Mapping[str, Any]
) -> Steps[tuple[str, list[Hit]]]:
    """One page: the PIT id to use next (the most recent one) and the page's hits."""
    answer = yield Call("search", page_request(pit, after, keep_alive, page_size, search))
    body = answer.raise_for_error()
    shards = body.get("_shards") or {}
    if shards.get("failed"):
        reasons = {str((f.get("reason") or {}).get("reason")) for f in shards.get("failures", [])}
        raise SearchError(
            f"a point-in-time scan lost {shards['failed']} of {shards.get('total', '?')} shards "
            f"({'; '.join(sorted(reasons))}): its pages would miss their documents; "
            "re-run once the cluster is green"
        )
    return str(body.get("pit_id") or pit), list(body["hits"]["hits"])


def close_steps(pit: str) -> Steps[None]:
    """Close the PIT; a failure is only logged (a courtesy: the PIT expires anyway)."""
    try:
        answer = yield Call("close_point_in_time", {"id": pit})
    except TransportError as exc:
        log.debug("closing the point in time failed: %s", exc)
        return
    if answer.error is not None:
        log.debug("closing the point in time failed: %s", answer.error)


def pit_pages(
    es: Any,
    index: str,
    *,
    page_size: int,
    keep_alive: str = KEEP_ALIVE,
    **search: Any,
) -> Generator[list[Hit], None, None]:
    """The hits of ``index`` a page at a time (never an empty page), with a sync client;
    ``search``: the rest of each page's request (``query``, ``source_includes``, ...)."""
    pit = run(es, open_steps(index, keep_alive))
    after: list[Any] | None = None
    try:
        while True:
            pit, hits = run(es, page_steps(pit, after, keep_alive, page_size, search))
            if not hits:
                return
            yield hits
            after = hits[-1]["sort"]
    finally:
        run(es, close_steps(pit))
