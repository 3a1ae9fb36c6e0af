"""Model migration behind an alias: a workflow above indexing, search and evaluation."""
