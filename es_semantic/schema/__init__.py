"""The index schema, pure: the contract in ``_meta``, the mapping built from it, and filters
over its metadata fields. Indexing and search both stand on it."""
