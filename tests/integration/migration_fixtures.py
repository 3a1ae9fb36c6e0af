"""What both migration test files start from: the tiny model, and an alias on an index it built
(as an application would have it before migrating)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from es_semantic import Encoder, Indexer


@pytest.fixture(scope="module", name="tiny")
def tiny_encoder(tiny_st_dir: str) -> Encoder:
    """The old model (import this fixture by name: ``tiny_encoder``)."""
    return Encoder(tiny_st_dir)


def alias_on_index(
    es: Any, alias: str, encoder: Encoder, docs: Sequence[dict[str, Any]]
) -> tuple[str, str]:
    """Index ``{alias}-v1`` built with ``encoder`` (every document indexed), queried through
    ``alias``; (alias, index)."""
    old = f"{alias}-v1"
    report = Indexer(es, old, encoder, metadata_fields={"lang": "keyword"}).index(docs)
    assert report.indexed == len(docs)
    es.indices.put_alias(index=old, name=alias)
    return alias, old
