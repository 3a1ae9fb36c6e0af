"""A Ray worker whose process dies on a poison record, as a native crash or the kernel's OOM
killer ends one: ``os._exit`` runs no ``finally`` and returns nothing to Ray, which restarts
the actor and sends the batch again. Pickled by value (the workers cannot import ``tests``)."""

from __future__ import annotations

import os
from typing import Any

import pyarrow as pa

from es_semantic.distributed.worker import IndexBatches

POISON = "POISON"


class DiesOnPoison(IndexBatches):
    def _index(self, indexer: Any, batch: pa.Table) -> pa.Table:
        if any(POISON in str(value) for value in batch.column("texts").to_pylist()):
            os._exit(1)
        return super()._index(indexer, batch)
