"""``es-semantic serve``: embeddings, rerank and search over HTTP (the ``serve`` extra)."""
