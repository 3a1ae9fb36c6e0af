"""Indexing on a Ray cluster (`pip install 'es-semantic[ray]'`).

``rows`` (pure: records and batch summaries as rows) and ``resources`` (pure: the actor pool
a cluster can run) -> ``datasource`` (files read by the local readers, as a Ray dataset) ->
``worker`` (the encoder actor: the local Indexer per batch, the run's shared state) ->
``engine`` (the driver: contract, actor pool, one report and dead-letter file, Ctrl-C).
"""

from es_semantic.distributed.engine import connect, index_dataset, index_files
from es_semantic.distributed.resources import Resources

__all__ = ["Resources", "connect", "index_dataset", "index_files"]
