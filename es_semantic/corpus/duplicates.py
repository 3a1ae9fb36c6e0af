"""Near-duplicates over an index, at the cost of one kNN search per document (or passage).

The index is read once through a point in time (:mod:`es_semantic.corpus.scan`, which says
where the vectors come from), a page at a time; each document's vector (each passage's, on
chunked indices) becomes a kNN probe with the threshold as kNN's own ``similarity`` cut-off and
the document itself filtered out, one ``_msearch`` per page. Memory holds a page and the pairs
found, not the index. On chunked indices a pair's score is its best passage pair, and the pair
says which passages matched.

A checkpoint file makes a long scan resumable: it records the documents done and the pairs
found; a re-run with the same file skips the former and keeps the latter.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elasticsearch import Elasticsearch
from tqdm import tqdm

from es_semantic.corpus.pairs import DuplicatePair, best_of, pairs_from_response
from es_semantic.corpus.pairs import text_snippet as snippet_of
from es_semantic.corpus.scan import DocVectors, scan_query, vector_pages
from es_semantic.elastic.calls import run
from es_semantic.errors import ConfigError
from es_semantic.indexing.admin import read_pinned_steps
from es_semantic.indexing.dedupe import neighbour_steps, probe_body
from es_semantic.indexing.readers import BadLine, json_lines
from es_semantic.schema.contract import IndexContract
from es_semantic.schema.filters import build_filters
from es_semantic.schema.similarity import knn_threshold

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder

PAGE_SIZE = 100


def find_duplicates(
    es: Elasticsearch,
    index: str,
    *,
    threshold: float = 0.9,
    top_k: int = 10,
    filters: Mapping[str, Any] | None = None,
    limit: int | None = None,
    encoder: Encoder | None = None,
    checkpoint: str | Path | None = None,
    progress: bool = False,
    page_size: int = PAGE_SIZE,
) -> Iterator[DuplicatePair]:
    """Pairs of documents of ``index`` (matching ``filters``) whose vectors' similarity is at
    least ``threshold`` (in the unit of :mod:`es_semantic.schema.similarity`), each pair once,
    as the scan finds them (sort with :func:`~es_semantic.corpus.pairs.best_of` for highest
    first).

    ``top_k``: neighbours looked at per document (or passage); ``limit``: documents to scan;
    ``encoder``: the index's model, needed on chunked indices."""
    if top_k < 1 or page_size < 1:
        raise ConfigError("top_k and page_size must be >= 1")
    # the probes go to the vectors the scan reads, never to where an alias points later
    contract, pinned = run(es, read_pinned_steps(index))
    probed = ",".join(pinned)
    knn_threshold(threshold, contract.similarity)  # refuse a threshold outside its unit first
    if encoder is not None:
        contract.check(encoder.config, index)
    built = build_filters(filters, list(contract.metadata_fields))
    state = _Checkpoint(Path(checkpoint)) if checkpoint else None
    seen: set[tuple[str, str]] = set()
    if state is not None:
        for pair in state.pairs:
            seen.add((pair.a, pair.b))
            yield pair
    total = int(es.count(index=index, query=scan_query(contract, built))["count"])
    bar = tqdm(total=min(total, limit or total), desc=f"duplicates in {index}", unit="doc",
               disable=not progress)  # fmt: skip
    scanned = 0
    try:
        pages = vector_pages(es, index, contract, filters=built, encoder=encoder,
                             page_size=page_size, source=contract.text_fields,
                             pinned=pinned)  # fmt: skip
        for page in pages:
            todo = [d for d in page if state is None or d.id not in state.done]
            if limit is not None:
                todo = todo[: max(limit - scanned, 0)]
            found = _probe_page(es, probed, contract, todo, built, threshold, top_k)
            new = [p for p in found if (p.a, p.b) not in seen]
            seen.update((p.a, p.b) for p in new)
            if state is not None:
                state.save([d.id for d in todo], new)
            yield from new
            scanned += len(todo)
            bar.update(len(todo))
            if limit is not None and scanned >= limit:
                return
    finally:
        bar.close()


def _probe_page(
    es: Elasticsearch,
    index: str,
    contract: IndexContract,
    docs: Sequence[DocVectors],
    filters: list[dict[str, Any]],
    threshold: float,
    top_k: int,
) -> list[DuplicatePair]:
    """One ``_msearch`` of probes (a vector each) for a page of documents; their pairs."""
    probes: list[tuple[str, str, str | None, list[float]]] = []  # id, snippet, passage, vector
    for doc in docs:
        snippet = snippet_of(doc.source, contract.text_fields)
        texts: Sequence[str | None] = doc.passages or [None]
        probes += [(doc.id, snippet, t, v.tolist()) for t, v in zip(texts, doc.vectors,
                                                                     strict=True)]  # fmt: skip
    if not probes:
        return []
    bodies = [probe_body(vector, contract, exclude_id=doc_id, top_k=top_k, threshold=threshold,
                         filters=filters, text_fields=contract.text_fields)
              for doc_id, _, _, vector in probes]  # fmt: skip
    responses = run(es, neighbour_steps(index, bodies))
    found: list[DuplicatePair] = []
    for (doc_id, snippet, passage, _), response in zip(probes, responses, strict=True):
        found += pairs_from_response(doc_id, response, contract, threshold, snippet=snippet,
                                     passage=passage)  # fmt: skip
    return best_of(found)


class _Checkpoint:
    """A JSONL file of ``{"done": [ids]}`` and ``{"pair": {...}}`` lines, appended per page."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        self.pairs: list[DuplicatePair] = []
        if not path.exists():
            return
        with open(path, "rb") as handle:
            for number, entry in json_lines(handle):
                if isinstance(entry, BadLine):
                    raise ConfigError(
                        f"checkpoint {path}:{number} is not JSON: delete the file to start over"
                    )
                self.done.update(entry.get("done", []))
                if "pair" in entry:
                    self.pairs.append(DuplicatePair(**entry["pair"]))

    def save(self, done: Sequence[str], pairs: Sequence[DuplicatePair]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            for pair in pairs:
                handle.write(json.dumps({"pair": pair.__dict__}, ensure_ascii=False) + "\n")
            handle.write(json.dumps({"done": list(done)}) + "\n")
        self.done.update(done)
