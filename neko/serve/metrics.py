"""The server's Prometheus metrics, in a registry of their own (one per app, so tests can run several)."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)

CONTENT_TYPE = CONTENT_TYPE_LATEST


class ServeMetrics:
    """Requests, examples, latency, fallbacks, queue depth and the size of every model call."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "neko_requests",
            "Correction requests answered, by HTTP status",
            ["status"],
            registry=self.registry,
        )
        self.examples = Counter("neko_examples", "Examples corrected", registry=self.registry)
        self.latency = Histogram(
            "neko_request_latency_seconds",
            "Time from a correction request's arrival to its answer",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "neko_fallbacks",
            "Corrections that fell back to the 1-best (or the rerank), by reason",
            ["reason"],
            registry=self.registry,
        )
        self.queue_depth = Gauge("neko_queue_depth", "Examples waiting for the model", registry=self.registry)
        self.model_calls = Counter(
            "neko_model_calls", "Batches run through the model", registry=self.registry
        )
        self.batch_requests = Histogram(
            "neko_batch_requests",
            "Requests served by one model call",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )
        self.batch_examples = Histogram(
            "neko_batch_examples",
            "Examples in one model call",
            buckets=BATCH_BUCKETS,
            registry=self.registry,
        )

    def record_batch(self, requests: int, examples: int) -> None:
        self.model_calls.inc()
        self.batch_requests.observe(requests)
        self.batch_examples.observe(examples)

    def record_corrections(self, corrections: Iterable[dict]) -> None:
        count = 0
        for correction in corrections:
            count += 1
            if correction.get("fell_back"):
                self.fallbacks.labels(reason=str(correction.get("reason"))).inc()
        self.examples.inc(count)

    def render(self) -> bytes:
        return generate_latest(self.registry)
