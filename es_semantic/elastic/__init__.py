"""Elasticsearch I/O: clients from settings, the cluster probe, and steps as data (calls)."""
