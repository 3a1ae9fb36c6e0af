"""Indexing on a Ray cluster (`pip install 'es-semantic[ray]'`).

``rows`` (pure: records and batch summaries as rows) -> ``datasource`` (files read by the
local readers, as a Ray dataset) -> ``worker`` (the encoder actor: the local Indexer per
batch) -> ``engine`` (the driver: contract, actor pool, one report and dead-letter file).
"""

from es_semantic.distributed.engine import Resources, connect, index_dataset, index_files

__all__ = ["Resources", "connect", "index_dataset", "index_files"]
