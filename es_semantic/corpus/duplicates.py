"""Near-duplicates over an index, at the cost of one kNN search per document (or passage).

The index is read once through a point in time (``search_after``), a page at a time; each
document's vector becomes a kNN probe with the threshold as kNN's own ``similarity`` cut-off
and the document itself filtered out, one ``_msearch`` per page. Memory holds a page and the
pairs found, not the index. Where the vectors come from:

- one vector per document: ``script_fields`` reading the ``dense_vector`` doc values
  (``doc['embedding'].vectorValue``, Painless on the contract's validated field name, in 8.x and
  9.x alike), so nothing is re-encoded and nothing relies on vectors in ``_source`` (which
  the mapping excludes, and 9.2+ leaves out by default);
- passages (chunked indices): the stored passage texts re-encoded with the index's model
  (nested doc values are not readable from the parent document's hit), so ``encoder`` is
  needed; a pair's score is its best passage pair, and the pair says which passages matched.

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

from es_semantic.corpus.pairs import DuplicatePair, best_of, pairs_from_response, probe_body
from es_semantic.corpus.pairs import text_snippet as snippet_of
from es_semantic.errors import ConfigError, SearchError
from es_semantic.indexing.admin import read_contract
from es_semantic.schema.contract import PASSAGES_FIELD, IndexContract
from es_semantic.schema.filters import build_filters
from es_semantic.search.queries import checked_field_name

if TYPE_CHECKING:
    from es_semantic.encoding.encoder import Encoder

PAGE_SIZE = 100
PIT_KEEP_ALIVE = "5m"
VECTOR_SCRIPT_FIELD = "_es_semantic_vector"


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
    least ``threshold``, each pair once, as the scan finds them (sort with
    :func:`~es_semantic.corpus.pairs.best_of` for highest first).

    ``top_k``: neighbours looked at per document (or passage); ``limit``: documents to scan;
    ``encoder``: the index's model, needed on chunked indices."""
    if top_k < 1 or page_size < 1:
        raise ConfigError("top_k and page_size must be >= 1")
    contract = read_contract(es, index)
    if contract.nested and encoder is None:
        raise ConfigError(
            f"index {index!r} holds passages: pass its model (--model) to re-encode them"
        )
    if encoder is not None:
        contract.check(encoder.config, index)
    built = build_filters(filters, list(contract.metadata_fields))
    state = _Checkpoint(Path(checkpoint)) if checkpoint else None
    seen: set[tuple[str, str]] = set()
    if state is not None:
        for pair in state.pairs:
            seen.add((pair.a, pair.b))
            yield pair
    total = int(es.count(index=index, query=_scan_query(contract, built))["count"])
    bar = tqdm(total=min(total, limit or total), desc=f"duplicates in {index}", unit="doc",
               disable=not progress)  # fmt: skip
    scanned = 0
    try:
        for page in _pages(es, index, contract, built, page_size):
            todo = [h for h in page if state is None or str(h["_id"]) not in state.done]
            if limit is not None:
                todo = todo[: max(limit - scanned, 0)]
            found = _probe_page(es, index, contract, todo, built, threshold, top_k, encoder)
            new = [p for p in found if (p.a, p.b) not in seen]
            seen.update((p.a, p.b) for p in new)
            if state is not None:
                state.save([str(h["_id"]) for h in todo], new)
            yield from new
            scanned += len(todo)
            bar.update(len(todo))
            if limit is not None and scanned >= limit:
                return
    finally:
        bar.close()


def _scan_query(contract: IndexContract, filters: list[dict[str, Any]]) -> dict[str, Any]:
    has_vector = (
        {"nested": {"path": PASSAGES_FIELD, "query": {"exists": {"field": contract.vector_path}}}}
        if contract.nested
        else {"exists": {"field": contract.vector_path}}
    )
    return {"bool": {"filter": [*filters, has_vector]}}


def _pages(
    es: Elasticsearch,
    index: str,
    contract: IndexContract,
    filters: list[dict[str, Any]],
    page_size: int,
) -> Iterator[list[dict[str, Any]]]:
    """The documents to probe, a page at a time, through a point in time."""
    source = [*contract.text_fields, *([f"{PASSAGES_FIELD}.text"] if contract.nested else [])]
    extra: dict[str, Any] = {}
    if not contract.nested:
        field = checked_field_name(contract.vector_field)
        script = {"source": f"doc['{field}'].vectorValue"}
        extra["script_fields"] = {VECTOR_SCRIPT_FIELD: {"script": script}}
    pit = es.open_point_in_time(index=index, keep_alive=PIT_KEEP_ALIVE)["id"]
    after: list[Any] | None = None
    try:
        while True:
            resp = es.search(
                pit={"id": pit, "keep_alive": PIT_KEEP_ALIVE}, size=page_size,
                query=_scan_query(contract, filters), sort=["_shard_doc"], search_after=after,
                source_includes=source, track_total_hits=False, **extra,
            )  # fmt: skip
            pit = resp.get("pit_id", pit)
            hits = resp["hits"]["hits"]
            if not hits:
                return
            yield hits
            after = hits[-1]["sort"]
    finally:
        es.options(ignore_status=404).close_point_in_time(id=pit)


def _probe_page(
    es: Elasticsearch,
    index: str,
    contract: IndexContract,
    hits: Sequence[Mapping[str, Any]],
    filters: list[dict[str, Any]],
    threshold: float,
    top_k: int,
    encoder: Encoder | None,
) -> list[DuplicatePair]:
    """One ``_msearch`` of probes for a page of documents; the pairs they found."""
    probes: list[tuple[str, str, str | None, list[float]]] = []  # id, snippet, passage, vector
    for hit in hits:
        doc_id, source = str(hit["_id"]), hit.get("_source") or {}
        snippet = snippet_of(source, contract.text_fields)
        if contract.nested:
            texts = [str(p.get("text", "")) for p in source.get(PASSAGES_FIELD) or []]
            texts = [t for t in texts if t.strip()]
            assert encoder is not None
            vectors = encoder.encode_documents(texts).tolist() if texts else []
            probes += [(doc_id, snippet, t, v) for t, v in zip(texts, vectors, strict=True)]
        else:
            vector = (hit.get("fields") or {}).get(VECTOR_SCRIPT_FIELD)
            if vector:
                probes.append((doc_id, snippet, None, [float(x) for x in vector]))
    if not probes:
        return []
    lines: list[Mapping[str, Any]] = []
    for doc_id, _, _, vector in probes:
        body = probe_body(vector, contract, exclude_id=doc_id, top_k=top_k,
                          threshold=threshold, filters=filters,
                          text_fields=contract.text_fields)  # fmt: skip
        lines += [{"index": index}, body]
    responses = es.msearch(searches=lines)["responses"]
    found: list[DuplicatePair] = []
    for (doc_id, snippet, passage, _), response in zip(probes, responses, strict=True):
        if "error" in response:
            raise SearchError(f"a duplicate probe on {index!r} failed: {response['error']}")
        found += pairs_from_response(doc_id, response, contract, threshold, snippet=snippet,
                                     passage=passage)  # fmt: skip
    return best_of(found)


class _Checkpoint:
    """A JSONL file of ``{"done": [ids]}`` and ``{"pair": {...}}`` lines, appended per page."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.done: set[str] = set()
        self.pairs: list[DuplicatePair] = []
        if path.exists():
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                try:
                    entry = json.loads(line)
                except json.JSONDecodeError:
                    raise ConfigError(
                        f"checkpoint {path}:{number} is not JSON: delete the file to start over"
                    ) from None
                self.done.update(entry.get("done", []))
                if "pair" in entry:
                    self.pairs.append(DuplicatePair(**entry["pair"]))

    def save(self, done: Sequence[str], pairs: Sequence[DuplicatePair]) -> None:
        with open(self.path, "a", encoding="utf-8") as handle:
            for pair in pairs:
                handle.write(json.dumps({"pair": pair.__dict__}, ensure_ascii=False) + "\n")
            handle.write(json.dumps({"done": list(done)}) + "\n")
        self.done.update(done)
