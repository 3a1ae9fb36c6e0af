"""The one point-in-time scan (indexing.pit): steps checked as data, and the sync shell driven by
a recording stand-in for the client (no server: what is asserted is the request sequence)."""

from typing import Any

import pytest
from elastic_transport import ApiResponseMeta, HttpHeaders, NodeConfig
from elasticsearch import NotFoundError

from es_semantic.elastic.calls import Answer, Call
from es_semantic.indexing.pit import close_steps, open_steps, page_steps, pit_pages


def _hits(*sorts: int) -> list[dict[str, Any]]:
    return [{"_id": str(s), "sort": [s]} for s in sorts]


def test_a_page_renews_the_keep_alive_and_hands_on_the_newest_pit_id() -> None:
    steps = page_steps("pit-1", [7], "2m", 50, {"query": {"match_all": {}}})
    call = next(steps)
    assert call == Call("search", {
        "query": {"match_all": {}}, "pit": {"id": "pit-1", "keep_alive": "2m"}, "size": 50,
        "sort": ["_shard_doc"], "search_after": [7], "track_total_hits": False,
        "allow_partial_search_results": False,
    })  # fmt: skip
    with pytest.raises(StopIteration) as done:
        steps.send(Answer({"pit_id": "pit-2", "hits": {"hits": _hits(8)}}))
    assert done.value.value == ("pit-2", _hits(8))


def test_open_returns_the_id_and_close_only_logs_a_failure() -> None:
    steps = open_steps("docs", "5m")
    assert next(steps) == Call("open_point_in_time", {"index": "docs", "keep_alive": "5m"})
    with pytest.raises(StopIteration) as done:
        steps.send(Answer({"id": "p"}))
    assert done.value.value == "p"
    closing = close_steps("p")
    assert next(closing) == Call("close_point_in_time", {"id": "p"})
    meta = ApiResponseMeta(404, "1.1", HttpHeaders(), 0.0, NodeConfig("http", "h", 9200))
    with pytest.raises(StopIteration):
        closing.send(Answer(error=NotFoundError("gone", meta, {})))


class _Recorder:
    """Answers open/search/close from a script of pages, recording every request."""

    def __init__(self, pages: list[list[dict[str, Any]]], fail_on_page: int | None = None):
        self.pages, self.fail_on_page = pages, fail_on_page
        self.requests: list[tuple[str, dict[str, Any]]] = []

    def open_point_in_time(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(("open", kwargs))
        return {"id": "pit-0"}

    def search(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(("search", kwargs))
        page = sum(1 for name, _ in self.requests if name == "search")
        if page == self.fail_on_page:
            raise ConnectionError("dropped")
        hits = self.pages[page - 1] if page <= len(self.pages) else []
        return {"pit_id": f"pit-{page}", "hits": {"hits": hits}}

    def close_point_in_time(self, **kwargs: Any) -> dict[str, Any]:
        self.requests.append(("close", kwargs))
        return {"succeeded": True}


def test_pages_follow_search_after_and_the_newest_pit_is_closed() -> None:
    es = _Recorder([_hits(1, 2), _hits(3)])
    pages = list(pit_pages(es, "docs", page_size=2, keep_alive="1m", source_includes=["t"]))
    assert pages == [_hits(1, 2), _hits(3)]
    searches = [kwargs for name, kwargs in es.requests if name == "search"]
    assert [s["search_after"] for s in searches] == [None, [2], [3]]
    assert [s["pit"]["id"] for s in searches] == ["pit-0", "pit-1", "pit-2"]
    assert all(s["pit"]["keep_alive"] == "1m" and s["source_includes"] == ["t"] for s in searches)
    assert "index" not in searches[0]  # a PIT search names no index
    assert es.requests[-1] == ("close", {"id": "pit-3"})


def test_the_pit_is_closed_when_a_page_fails_or_the_reader_stops_early() -> None:
    failing = _Recorder([_hits(1)], fail_on_page=2)
    with pytest.raises(ConnectionError):
        list(pit_pages(failing, "docs", page_size=1))
    assert failing.requests[-1] == ("close", {"id": "pit-1"})
    stopped = _Recorder([_hits(1), _hits(2)])
    pages = pit_pages(stopped, "docs", page_size=1)
    next(pages)
    pages.close()
    assert stopped.requests[-1] == ("close", {"id": "pit-1"})


def test_a_page_from_some_shards_only_is_refused() -> None:
    """Partial results are asked away; a server that still counts failed shards is refused."""
    from es_semantic.errors import SearchError

    steps = page_steps("p", None, "1m", 10, {})
    assert next(steps).kwargs["allow_partial_search_results"] is False
    lost = {"total": 3, "successful": 2, "failed": 1,
            "failures": [{"shard": 2, "reason": {"type": "x", "reason": "node left"}}]}  # fmt: skip
    with pytest.raises(SearchError, match=r"lost 1 of 3 shards \(node left\): .* re-run once"):
        steps.send(Answer({"_shards": lost, "hits": {"hits": _hits(1)}}))
