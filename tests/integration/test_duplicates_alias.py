"""The duplicates scan reads vectors through a point in time (the indices behind the name when
it opened) and probes each with kNN: the probes must go to those same indices. When the alias
moves mid-scan (``migrate`` swaps it to an index built with another model), probing through
the name would compare the old model's vectors with the new model's."""

from __future__ import annotations

from es_semantic import Encoder
from es_semantic.corpus.duplicates import find_duplicates
from tests.integration.alias_moves import old_and_new, swap
from tests.integration.test_searcher_recreated import DOCS, second  # noqa: F401 (fixture)


def test_probes_stay_on_the_scanned_index_when_the_alias_moves(
    es,
    index_name,
    tiny: Encoder,
    second: Encoder,  # noqa: F811
) -> None:
    old, new = old_and_new(es, index_name, (tiny, second), lambda tag: [
        {"id": f"{tag}-{i}", "text": t} for i, t in enumerate(DOCS)], chunking="none")  # fmt: skip
    scan = find_duplicates(es, index_name, threshold=-1.0, top_k=len(DOCS), page_size=1)
    pairs = [next(scan)]  # the scan is under way: its point in time holds the old index
    swap(es, index_name, old, new)
    pairs += list(scan)
    ids = {i for p in pairs for i in (p.a, p.b)}
    assert ids == {f"old-{i}" for i in range(len(DOCS))}, sorted(ids)
