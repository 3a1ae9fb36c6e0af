"""Retrieval evaluation: metrics (pure), BEIR/TREC loading, and the run-once-fuse-many runner."""
