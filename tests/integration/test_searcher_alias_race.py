"""A searcher shared by concurrent searches (threads, or the service's tasks) across an alias
swap: a search planned and encoded for the old index whose request reaches the new one must
notice it by the indices of the contract *it* used, even when another search has meanwhile
read the new contract (and so changed what the searcher holds)."""

from __future__ import annotations

from es_semantic import Encoder, Searcher
from tests.integration.alias_moves import old_and_new, swap
from tests.integration.test_searcher_recreated import DOCS, second  # noqa: F401 (fixture)


def test_a_search_racing_the_swap_is_not_answered_with_the_old_model(
    es,
    index_name,
    tiny: Encoder,
    second: Encoder,  # noqa: F811
) -> None:
    old, new = old_and_new(es, index_name, (tiny, second), lambda tag: [
        {"id": str(i), "text": t} for i, t in enumerate(DOCS)], chunking="none")  # fmt: skip
    searcher = Searcher(es, index_name, [tiny, second])  # an app that knows both models
    assert searcher.search("vector search", mode="knn", k=3).hits
    assert searcher.encoder is tiny

    original, raced = searcher._msearch, []

    def racing(plan, took):  # this search's request is made for the old index ...
        if not raced:
            raced.append(True)
            swap(es, index_name, old, new)
            # ... meanwhile another search notices the swap and reads the new contract
            raced.append(searcher.search("vector search", mode="knn", k=3))
        return (yield from original(plan, took))

    searcher._msearch = racing
    result = searcher.search("vector search", mode="knn", k=3)
    assert searcher.encoder is second
    expected = [(h.id, round(h.score, 4)) for h in raced[1].hits]
    assert [(h.id, round(h.score, 4)) for h in result.hits] == expected  # the new model's
