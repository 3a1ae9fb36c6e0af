"""An alias over an index one model wrote, and the index another model wrote beside it: what
``migrate`` leaves just before its swap, and the swap itself (for tests that move the alias
in the middle of a run)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from es_semantic import Indexer


def old_and_new(
    es: Any, alias: str, models: Sequence[Any], docs: Callable[[str], list[dict[str, Any]]],
    **indexer_options: Any,
) -> tuple[str, str]:  # fmt: skip
    """``docs("old")`` in ``{alias}-old`` by ``models[0]``, ``docs("new")`` in ``{alias}-new``
    by ``models[1]``; the alias on the old one."""
    old, new = f"{alias}-old", f"{alias}-new"
    for name, model, tag in ((old, models[0], "old"), (new, models[1], "new")):
        Indexer(es, name, model, **indexer_options).index(docs(tag))
    es.indices.refresh(index=f"{old},{new}")
    es.indices.put_alias(index=old, name=alias)
    return old, new


def swap(es: Any, alias: str, old: str, new: str) -> None:
    """The alias moves from ``old`` to ``new`` in one step, as migrate's swap does."""
    es.indices.update_aliases(actions=[{"remove": {"index": old, "alias": alias}},
                                       {"add": {"index": new, "alias": alias}}])  # fmt: skip
