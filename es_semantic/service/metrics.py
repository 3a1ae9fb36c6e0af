"""Prometheus metrics of the service, in a registry of its own."""

from __future__ import annotations

from es_semantic.errors import MissingDependencyError

try:
    from prometheus_client import (
        CONTENT_TYPE_LATEST,
        CollectorRegistry,
        Counter,
        Gauge,
        Histogram,
        generate_latest,
    )
except ImportError as exc:  # pragma: no cover - part of the serve extra
    raise MissingDependencyError("prometheus-client", "serve", "es-semantic serve") from exc


class ServiceMetrics:
    """Requests by route and status, latency per route and per stage (encode, each search
    leg, fusion, rerank), texts and requests per forward pass, queue depth."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("es_semantic_requests", "HTTP requests", ["route", "status"],
                                registry=self.registry)  # fmt: skip
        self.latency = Histogram("es_semantic_request_seconds", "request latency", ["route"],
                                 registry=self.registry)  # fmt: skip
        self.stages = Histogram("es_semantic_stage_seconds", "time per stage", ["stage"],
                                registry=self.registry)  # fmt: skip
        self.batch_texts = Histogram(
            "es_semantic_batch_texts", "texts per forward pass", registry=self.registry,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
        )  # fmt: skip
        self.batch_requests = Histogram(
            "es_semantic_batch_requests", "requests coalesced per forward pass",
            registry=self.registry, buckets=(1, 2, 4, 8, 16, 32, 64),
        )  # fmt: skip
        self.queue = Gauge("es_semantic_queue_depth", "requests waiting for the model",
                           registry=self.registry)  # fmt: skip
        self.content_type = CONTENT_TYPE_LATEST

    def request(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def stage(self, name: str, seconds: float) -> None:
        self.stages.labels(name).observe(seconds)

    def observe_batch(self, texts: int, requests: int) -> None:
        self.batch_texts.observe(texts)
        self.batch_requests.observe(requests)

    def queue_depth(self, depth: int) -> None:
        self.queue.set(depth)

    def render(self) -> str:
        return generate_latest(self.registry).decode()
