"""Prometheus metrics on a per-app CollectorRegistry (never the global one, so apps and tests don't collide)."""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "lightguard_http_requests", "HTTP requests", ["method", "route", "status"], registry=self.registry
        )
        self.latency = Histogram(
            "lightguard_http_request_duration_seconds",
            "HTTP request latency",
            ["method", "route"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.classified = Counter(
            "lightguard_classified_texts", "Texts classified", ["endpoint"], registry=self.registry
        )
        self.flagged = Counter("lightguard_flagged", "Flagged texts per category", ["category"], registry=self.registry)
        self.decision_log_failures = Counter(
            "lightguard_decision_log_failures",
            "Decision-log writes that failed (the verdicts were still returned)",
            registry=self.registry,
        )
        self.index_size = Gauge("lightguard_index_exemplars", "Exemplars in the live index", registry=self.registry)
        self.index_version = Gauge("lightguard_index_version", "Version of the live index", registry=self.registry)

    def bind_index(self, size: Callable[[], float], version: Callable[[], float]) -> None:
        """Read the index gauges from the live runtime at scrape time."""
        self.index_size.set_function(size)
        self.index_version.set_function(version)

    def render(self) -> bytes:
        return generate_latest(self.registry)
