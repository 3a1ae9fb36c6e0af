"""What the migration and PIT-scan tests start from: an alias on an index built with a model (as
an application would have it before migrating)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from es_semantic import Encoder, Indexer


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
