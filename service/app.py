"""`create_app(settings)`: the FastAPI application; its lifespan opens the database and loads the index."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from prometheus_client import Gauge, ProcessCollector

from index import Encoder, warm_up
from service.api import classify, decisions, health, index, keys, moderations, topics
from service.api.console import mount_console
from service.api.contract import document_texts
from service.context import ServiceContext, open_context
from service.exception_handlers import add_exception_handlers
from service.metrics import Metrics
from service.middleware import BodySizeLimitMiddleware, MetricsMiddleware
from service.serving.interprocess import FileLock
from service.serving.runtime import GuardRuntime, configure_threads, search_executor
from service.settings import Settings
from service.usecases.following import IndexFollower
from service.usecases.retention import DecisionRetention, RetentionPolicy

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, encoder: Encoder | None = None) -> FastAPI:
    """The service app. Nothing heavy happens here; start-up work runs in the lifespan.

    Args:
        settings: configuration; default reads `LIGHTGUARD_*` from the environment.
        encoder: override the encoder the settings select (tests inject a deterministic one).
    """
    settings = settings or Settings()
    metrics = Metrics()
    runtime_ref: list[GuardRuntime] = []
    _serving_gauges(metrics, runtime_ref)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_threads(settings.search_threads)
        # asyncio.to_thread (edits, calibrations) runs in the default executor: its threads search too, and OpenMP
        # settings are per thread, so they get the same FAISS thread count as the classify threads.
        workers = min(32, (os.cpu_count() or 1) + 4)  # asyncio's own default size
        asyncio.get_running_loop().set_default_executor(search_executor(workers, settings.search_threads, "lightguard"))
        # Workers sharing LIGHTGUARD_HOME migrate and seed one at a time (concurrent `alembic upgrade` fails).
        ctx = await asyncio.to_thread(_open_context_alone, settings, encoder, metrics)
        ctx.runtime.configure_batching(settings.batch_max_texts, settings.batch_wait_ms)
        runtime_ref.append(ctx.runtime)
        app.state.ctx = ctx
        # The serving process must not carry torch (~400 MB RSS, seconds of import): say so where operators look.
        log.info(
            "serving: torch imported=%s, search threads=%d, batch <=%d texts, batch wait %.1f ms",
            "torch" in sys.modules,
            settings.search_threads,
            settings.batch_max_texts,
            settings.batch_wait_ms,
        )
        # Load or build in the background: /healthz answers at once, /readyz turns 200 when the index serves.
        # Beside it, load what a first classify would load lazily (language identifier, vocabulary: ~1.6 s).
        loader = asyncio.create_task(_load(ctx))
        # Follow index versions committed by other processes (other workers, the CLI): see service.usecases.following.
        follower = IndexFollower(ctx.following, settings.follow_interval_s)
        app.state.follower = follower
        following = asyncio.create_task(follower.run()) if settings.follow_interval_s > 0 else None
        # Decision-log retention deletes in small batches on a thread of its own (service.usecases.retention).
        policy = RetentionPolicy.from_settings(settings)
        retention = DecisionRetention(ctx.sessions, policy) if policy.active else None
        if retention is not None:
            retention.start()
        try:
            yield
        finally:
            if retention is not None:
                retention.stop()
            follower.stop()  # ends after its poll in flight, before the engine is disposed
            if not loader.done():
                loader.cancel()
            for task in [t for t in (loader, following) if t is not None]:
                with contextlib.suppress(BaseException):
                    await task
            await ctx.rebuilds.aclose()  # a rebuild cut off here is marked failed (cancelled)
            # an artifact save requested by the last edits finishes before the guard goes: otherwise the next start
            # loads an older artifact and replays those edits from the change log
            await ctx.edits.flush()
            await ctx.runtime.aclose()
            ctx.close()

    app = FastAPI(
        title="lightguard",
        version="0.1.0",
        summary="Safety guardrail: built-in safety categories plus custom topic filters from a few examples",
        lifespan=lifespan,
    )
    add_exception_handlers(app)
    document_texts(app)
    for router in (
        classify.router,
        moderations.router,
        topics.router,
        index.router,
        keys.router,
        decisions.router,
        health.router,
    ):
        app.include_router(router)
    mount_console(app)
    # Last added runs first: metrics see every request, including the 413s of the body limit.
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app


async def _load(ctx: ServiceContext) -> None:
    await asyncio.gather(asyncio.to_thread(warm_up), ctx.lifecycle.load_or_build())


def _open_context_alone(settings: Settings, encoder: Encoder | None, metrics: Metrics) -> ServiceContext:
    with FileLock(settings.home / ".startup.lock").hold():
        return open_context(settings, encoder, metrics)


def _serving_gauges(metrics: Metrics, runtime_ref: list[GuardRuntime]) -> None:
    """Process RSS/CPU, whether torch is loaded, and micro-batch counters on the app's own registry."""
    ProcessCollector(registry=metrics.registry)
    torch = Gauge(
        "lightguard_torch_imported", "1 if torch is in sys.modules of the serving process", registry=metrics.registry
    )
    torch.set_function(lambda: float("torch" in sys.modules))

    def stat(name: str) -> float:
        return float(getattr(runtime_ref[0].batcher.stats, name)) if runtime_ref else 0.0

    for name, doc in (
        ("batches", "Micro-batches run"),
        ("requests", "Requests served through micro-batches"),
        ("texts", "Texts classified through micro-batches"),
        ("largest", "Most model runs (by length) in one micro-batch"),
        ("slices", "Scheduling steps of large requests (a few windows each)"),
    ):
        gauge = Gauge(f"lightguard_microbatch_{name}", doc, registry=metrics.registry)
        gauge.set_function(functools.partial(stat, name))
