"""Load evaluation data: BEIR folders (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) and TREC
qrels, with errors that name the file and line."""

from __future__ import annotations

from pathlib import Path

from es_semantic.errors import InputError
from es_semantic.indexing.readers import BadLine, json_lines


def load_queries(path: str | Path) -> dict[str, str]:
    """JSONL with ``_id``/``id`` and ``text``, or TSV ``id<TAB>text``."""
    path = Path(path)
    queries: dict[str, str] = {}
    try:
        lines = path.read_bytes().splitlines()
    except OSError as exc:
        raise InputError(f"cannot read queries {path}: {exc.strerror}") from None
    for number, value in json_lines(lines, text_lines=True):
        if isinstance(value, BadLine):
            wrong = f"invalid JSON ({value.message})" if value.column is not None else value.reason
            raise InputError(f"{path}:{number}: {wrong}")
        if isinstance(value, str):
            qid, _, text = value.partition("\t")
        else:
            qid, text = value.get("_id", value.get("id")), value.get("text")
        if qid is None or not isinstance(text, str) or not text.strip():
            raise InputError(f"{path}:{number}: a query needs an id and a text")
        queries[str(qid)] = text
    return queries


def load_qrels(path: str | Path) -> dict[str, dict[str, int]]:
    """BEIR TSV (``query-id corpus-id score`` with a header) or TREC (``qid 0 docid rel``)."""
    path = Path(path)
    qrels: dict[str, dict[str, int]] = {}
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise InputError(f"cannot read qrels {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, start=1):
        parts = line.split()
        if not parts or (number == 1 and parts[0] in ("query-id", "qid", "query_id")):
            continue
        if len(parts) == 3:
            qid, doc, rel = parts
        elif len(parts) == 4:
            qid, _, doc, rel = parts
        else:
            raise InputError(f"{path}:{number}: expected 'qid docid rel' or 'qid 0 docid rel'")
        try:
            qrels.setdefault(qid, {})[doc] = int(float(rel))
        except ValueError:
            raise InputError(f"{path}:{number}: relevance {rel!r} is not a number") from None
    return qrels


def beir_paths(folder: str | Path, split: str) -> tuple[Path, Path, Path]:
    """corpus.jsonl, queries.jsonl and qrels/SPLIT.tsv of a BEIR folder, checked."""
    folder = Path(folder)
    paths = (folder / "corpus.jsonl", folder / "queries.jsonl", folder / "qrels" / f"{split}.tsv")
    for p in paths:
        if not p.is_file():
            raise InputError(f"{folder} is not a BEIR folder: {p} is missing")
    return paths
