"""Near-duplicate pairs, pure: the pairs a document's kNN probe answer holds (the probe is
:func:`es_semantic.indexing.dedupe.probe_body`, re-exported here), and groups joined from
pairs. No I/O (see :mod:`es_semantic.corpus.duplicates` for the scan).

Scores are the index's own similarity in its raw unit (:mod:`es_semantic.schema.similarity`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from es_semantic.indexing.dedupe import neighbours, probe_body
from es_semantic.schema.contract import IndexContract
from es_semantic.search.core import best_passage

__all__ = ["DuplicateGroup", "DuplicatePair", "best_of", "group_pairs", "pairs_from_response",
           "probe_body", "text_snippet"]  # fmt: skip

SNIPPET_CHARS = 160


@dataclass(frozen=True)
class DuplicatePair:
    """Two documents whose vectors are at least as similar as the threshold, each pair once
    (``a`` < ``b``). On chunked indices the pair's best passages say what matched."""

    a: str
    b: str
    score: float
    snippet_a: str = ""
    snippet_b: str = ""
    passage_a: str | None = None
    passage_b: str | None = None

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "a": self.a,
            "b": self.b,
            "score": round(self.score, 6),
            "snippet_a": self.snippet_a,
            "snippet_b": self.snippet_b,
        }
        if self.passage_a is not None or self.passage_b is not None:
            data["passage_a"], data["passage_b"] = self.passage_a, self.passage_b
        return data


@dataclass
class DuplicateGroup:
    """Documents joined by pairs (connected components); ``representative`` is the member with
    the most links (ties: highest best score, then the smallest id)."""

    representative: str
    members: list[str]
    pairs: int
    best_score: float
    snippets: dict[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"representative": self.representative, "size": len(self.members),
                "members": self.members, "pairs": self.pairs,
                "best_score": round(self.best_score, 6)}  # fmt: skip


def pairs_from_response(
    doc_id: str,
    response: Mapping[str, Any],
    contract: IndexContract,
    threshold: float,
    *,
    snippet: str = "",
    passage: str | None = None,
) -> list[DuplicatePair]:
    """The pairs (``doc_id``, hit) a probe's answer holds at or above ``threshold``."""
    pairs = []
    for hit, score in neighbours(response, contract, threshold):
        other = str(hit["_id"])
        if other == doc_id:
            continue
        other_snippet = text_snippet(hit.get("_source") or {}, contract.text_fields)
        other_passage = best_passage(hit) if contract.nested else None
        mine = (doc_id, snippet, passage)
        theirs = (other, other_snippet, other_passage)
        first, second = (mine, theirs) if doc_id < other else (theirs, mine)
        pairs.append(DuplicatePair(first[0], second[0], score, first[1], second[1],
                                   first[2], second[2]))  # fmt: skip
    return pairs


def text_snippet(source: Mapping[str, Any], text_fields: Sequence[str]) -> str:
    parts = [str(source[f]) for f in text_fields if isinstance(source.get(f), str)]
    text = " | ".join(" ".join(p.split()) for p in parts if p.strip())
    return text if len(text) <= SNIPPET_CHARS else text[: SNIPPET_CHARS - 1] + "…"


def best_of(pairs: Iterable[DuplicatePair]) -> list[DuplicatePair]:
    """Each pair once, its best score (a pair is found from both sides, and once per passage
    on chunked indices), highest first."""
    best: dict[tuple[str, str], DuplicatePair] = {}
    for pair in pairs:
        key = (pair.a, pair.b)
        if key not in best or pair.score > best[key].score:
            best[key] = pair
    return sorted(best.values(), key=lambda p: (-p.score, p.a, p.b))


def group_pairs(pairs: Sequence[DuplicatePair]) -> list[DuplicateGroup]:
    """Connected components of the pair graph (transitive: a~b and b~c put a, b, c together),
    largest first."""
    parent: dict[str, str] = {}

    def root(x: str) -> str:
        parent.setdefault(x, x)
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for pair in pairs:
        ra, rb = root(pair.a), root(pair.b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    links: dict[str, int] = {}
    best: dict[str, float] = {}
    snippets: dict[str, str] = {}
    for pair in pairs:
        for member, text in ((pair.a, pair.snippet_a), (pair.b, pair.snippet_b)):
            links[member] = links.get(member, 0) + 1
            best[member] = max(best.get(member, -math.inf), pair.score)
            snippets.setdefault(member, text)
    groups: dict[str, DuplicateGroup] = {}
    for member in sorted(links):
        key = root(member)
        group = groups.setdefault(key, DuplicateGroup(member, [], 0, -math.inf))
        group.members.append(member)
        group.snippets[member] = snippets[member]
    for pair in pairs:
        group = groups[root(pair.a)]
        group.pairs += 1
        group.best_score = max(group.best_score, pair.score)
    for group in groups.values():
        group.representative = min(group.members, key=lambda m: (-links[m], -best[m], m))
    return sorted(groups.values(), key=lambda g: (-len(g.members), -g.best_score,
                                                  g.representative))  # fmt: skip
