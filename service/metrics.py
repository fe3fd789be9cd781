"""Prometheus metrics on a per-app CollectorRegistry (never the global one, so apps and tests don't collide)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from service.serving.batching import DropReason, Lane

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
        self.queue_wait = Histogram(
            "lightguard_queue_wait_seconds",
            "Wait from a classify request's arrival at the scheduler to its first step, per lane (small requests are"
            " micro-batched, large ones run in slices)",
            ["lane"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.dropped_requests = Counter(
            "lightguard_dropped_requests",
            "Classify requests stopped before their work was done (client disconnected, deadline passed)",
            ["reason"],
            registry=self.registry,
        )
        self.dropped_runs = Counter(
            "lightguard_dropped_model_runs",
            "Model runs not done because their request was stopped (client disconnected, deadline passed)",
            ["reason"],
            registry=self.registry,
        )
        self.over_budget = Counter(
            "lightguard_rejected_over_budget",
            "Classify requests refused because they need more model runs than LIGHTGUARD_MAX_REQUEST_COST",
            registry=self.registry,
        )
        self.rate_limited = Counter(
            "lightguard_rate_limited",
            "Requests refused with 429, per API key id (`anonymous` when no keys are configured) and limit",
            ["key", "limit"],
            registry=self.registry,
        )
        self.index_loaded_from = Counter(
            "lightguard_index_loaded_from",
            "Index artifacts read at start-up or while following a full build, by where they came from: `home`"
            " (LIGHTGUARD_HOME), `database` (a full build's artifact stored there), `build` (embedded every exemplar)",
            ["source"],
            registry=self.registry,
        )
        self.embedding_cache_texts = Counter(
            "lightguard_embedding_cache_texts",
            "Exemplar and topic-example texts looked up in the embedding cache (LIGHTGUARD_EMBEDDING_CACHE), by"
            " result: `hit` (vector taken from the cache) or `miss` (embedded, then stored)",
            ["result"],
            registry=self.registry,
        )
        # labelled children by label values: `labels()` validates and joins the values on every call, several times
        # per request on the classify path; the label sets here are bounded (routes, statuses, lanes, categories)
        self._children: dict[tuple[object, ...], Any] = {}
        self.index_size = Gauge("lightguard_index_exemplars", "Exemplars in the live index", registry=self.registry)
        self.index_version = Gauge("lightguard_index_version", "Version of the live index", registry=self.registry)

    def _child(self, metric: Counter | Histogram, *values: str) -> Any:
        key = (metric, *values)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(*values)
        return child

    def request_done(self, method: str, route: str, status: int, seconds: float) -> None:
        """Count one HTTP request and observe its latency, by route template."""
        self._child(self.requests, method, route, str(status)).inc()
        self._child(self.latency, method, route).observe(seconds)

    def verdicts(self, endpoint: str, texts: int, flagged_categories: Sequence[str]) -> None:
        """Count a request's `texts` classified texts and its flagged ones (a category per flagged text)."""
        self._child(self.classified, endpoint).inc(texts)
        for category in flagged_categories:
            self._child(self.flagged, category).inc()

    def embedding_lookup(self, hits: int, misses: int) -> None:
        """Count one embedding-cache lookup (`SqliteEmbeddingCache(on_lookup=...)`)."""
        self.embedding_cache_texts.labels(result="hit").inc(hits)
        self.embedding_cache_texts.labels(result="miss").inc(misses)

    def queued(self, lane: Lane, seconds: float) -> None:
        self._child(self.queue_wait, lane).observe(seconds)

    def dropped(self, reason: DropReason, units: int) -> None:
        self.dropped_requests.labels(reason=reason).inc()
        self.dropped_runs.labels(reason=reason).inc(units)

    def index_loaded(self, source: str) -> None:
        self.index_loaded_from.labels(source=source).inc()

    def bind_index(self, size: Callable[[], float], version: Callable[[], float]) -> None:
        """Read the index gauges from the live runtime at scrape time."""
        self.index_size.set_function(size)
        self.index_version.set_function(version)

    def render(self) -> bytes:
        return generate_latest(self.registry)
