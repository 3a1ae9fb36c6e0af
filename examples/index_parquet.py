"""Index a Parquet export (a data warehouse dump, a Spark job's output) into an es-semantic index.

    pip install 'es-semantic[models,parquet]'
    python index_parquet.py export.parquet docs --id-column doc_id \\
        --text-column title --text-column body --metadata-column lang --metadata-column year:long

The file is read in record batches (memory stays flat whatever its size) and only the columns
named are read. Rows with no text, and rows the cluster refuses, go to the dead-letter file
with their row number (``PATH:row N``); the exit code is 1 when any did. (``es-semantic index docs
export.parquet`` does the same from the command line; this is the route when you need to map
or clean columns in Python on the way.)
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from datetime import date, datetime
from typing import Any

import pyarrow.parquet as pq
from elasticsearch import Elasticsearch

from es_semantic import Encoder, ESConfig, EsSemanticError, Indexer
from es_semantic.indexing.readers import FieldSpec, to_document


def plain(value: Any) -> Any:
    """A Parquet value as JSON can hold it (dates and timestamps as ISO text)."""
    return value.isoformat() if isinstance(value, date | datetime) else value


def rows(path: str, columns: list[str], spec: FieldSpec, batch_rows: int = 10_000) -> Iterator[Any]:
    """Each row of ``path`` (only ``columns``) as a Document, or as a ReadFailure (no text,
    say) that becomes a dead letter; both carry ``PATH:row N`` as their origin."""
    number = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=batch_rows, columns=columns):
        for row in batch.to_pylist():
            number += 1
            record = {name: plain(value) for name, value in row.items()}
            yield to_document(record, spec, f"{path}:row {number}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("path")
    parser.add_argument("index")
    parser.add_argument("--id-column", required=True)
    parser.add_argument("--text-column", action="append", required=True)
    parser.add_argument("--metadata-column", action="append", default=[], help="NAME[:TYPE]")
    parser.add_argument("--dead-letter", help="JSONL of failed rows [INDEX.dead.jsonl]")
    args = parser.parse_args(argv)
    metadata = dict(m.split(":", 1) if ":" in m else (m, "keyword") for m in args.metadata_column)
    columns = [args.id_column, *args.text_column, *metadata]
    try:
        total = pq.ParquetFile(args.path).metadata.num_rows
    except (OSError, ValueError) as exc:  # missing file, not Parquet
        print(f"error: cannot read {args.path} as Parquet: {exc}", file=sys.stderr)
        return 2
    es = Elasticsearch(**ESConfig.from_env().client_kwargs())
    try:
        indexer = Indexer(
            es,
            args.index,
            Encoder(os.environ.get("ES_SEMANTIC_MODEL")),
            id_field=args.id_column,
            text_fields=args.text_column,
            metadata_fields=metadata,
            progress=True,
            dead_letter=args.dead_letter or f"{args.index}.dead.jsonl",
        )
        spec = indexer.field_spec()  # creates the index, or checks its contract
        report = indexer.index(rows(args.path, columns, spec), total=total)
    except EsSemanticError as exc:  # one line; IndexingError carries the report
        print(f"error: {exc}", file=sys.stderr)
        return 1
    finally:
        es.close()
    print(
        f"{report.indexed} indexed, {report.skipped} unchanged, {report.failed} failed "
        f"of {total} rows" + (f": see {report.dead_letter}" if report.failed else "")
    )
    return 1 if report.failed else 0


if __name__ == "__main__":
    sys.exit(main())
