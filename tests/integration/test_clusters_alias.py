"""`clusters` reads an index twice (a sample to fit the centres, then every document to assign
and write back). When the alias moves in between (``migrate`` swaps it to an index another
model wrote), the second pass would label the new model's vectors with the old model's
centres and write those labels into the new index: it must refuse instead, before writing."""

from __future__ import annotations

from typing import Any

import pytest

from es_semantic import Encoder
from es_semantic.corpus import clusters
from es_semantic.errors import ConfigError
from tests.integration.alias_moves import old_and_new, swap
from tests.integration.test_searcher_recreated import DOCS, second  # noqa: F401 (fixture)


def test_an_alias_moved_between_the_two_passes_is_refused_before_any_write(
    es: Any, index_name: str, tiny: Encoder, second: Encoder,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    old, new = old_and_new(es, index_name, (tiny, second), lambda tag: [
        {"id": f"{tag}-{i}", "text": t} for i, t in enumerate(DOCS)], chunking="none")  # fmt: skip
    fit = clusters.kmeans

    def swap_then_fit(*args: Any, **kwargs: Any) -> Any:  # migrate's swap, mid-run
        swap(es, index_name, old, new)
        return fit(*args, **kwargs)

    monkeypatch.setattr(clusters, "kmeans", swap_then_fit)
    with pytest.raises(ConfigError, match="moved"):
        clusters.cluster_index(es, index_name, k=2, sample=len(DOCS), write_field="topic")
    es.indices.refresh(index=new)
    labelled = es.count(index=new, query={"exists": {"field": "topic"}})["count"]
    assert labelled == 0  # the old centres never labelled the new model's documents
