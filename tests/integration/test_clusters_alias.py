"""`clusters` reads an index twice (a sample to fit the centres, then every document to assign
and write back). When the alias moves in between (``migrate`` swaps it to an index another
model wrote), the second pass would label the new model's vectors with the old model's
centres and write those labels into the new index: it must refuse instead, before writing."""

from __future__ import annotations

from typing import Any

import pytest

from es_semantic import Encoder, Indexer
from es_semantic.corpus import clusters
from es_semantic.errors import ConfigError
from tests.integration.test_searcher_recreated import DOCS, second  # noqa: F401 (fixture)


def _build(es: Any, index_name: str, tiny: Encoder, other: Encoder) -> tuple[str, str]:
    old, new = f"{index_name}-old", f"{index_name}-new"
    Indexer(es, old, tiny, chunking="none").index(
        [{"id": f"old-{i}", "text": t} for i, t in enumerate(DOCS)]
    )
    Indexer(es, new, other, chunking="none").index(
        [{"id": f"new-{i}", "text": t} for i, t in enumerate(DOCS)]
    )
    es.indices.refresh(index=f"{old},{new}")
    es.indices.put_alias(index=old, name=index_name)
    return old, new


def test_an_alias_moved_between_the_two_passes_is_refused_before_any_write(
    es: Any, index_name: str, tiny: Encoder, second: Encoder,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    old, new = _build(es, index_name, tiny, second)
    fit = clusters.kmeans

    def swap_then_fit(*args: Any, **kwargs: Any) -> Any:  # migrate's swap, mid-run
        es.indices.update_aliases(actions=[{"remove": {"index": old, "alias": index_name}},
                                           {"add": {"index": new, "alias": index_name}}])  # fmt: skip
        return fit(*args, **kwargs)

    monkeypatch.setattr(clusters, "kmeans", swap_then_fit)
    with pytest.raises(ConfigError, match="moved"):
        clusters.cluster_index(es, index_name, k=2, sample=len(DOCS), write_field="topic")
    es.indices.refresh(index=new)
    labelled = es.count(index=new, query={"exists": {"field": "topic"}})["count"]
    assert labelled == 0  # the old centres never labelled the new model's documents
