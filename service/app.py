"""`create_app(settings)`: the FastAPI application; its lifespan opens the database and loads the index."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from index import Encoder
from service.api import classify, health, index, moderations, topics
from service.context import open_context
from service.exception_handlers import add_exception_handlers
from service.metrics import Metrics
from service.middleware import BodySizeLimitMiddleware, MetricsMiddleware
from service.settings import Settings

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, encoder: Encoder | None = None) -> FastAPI:
    """The service app. Nothing heavy happens here; start-up work runs in the lifespan.

    Args:
        settings: configuration; default reads `LIGHTGUARD_*` from the environment.
        encoder: override the encoder the settings select (tests inject a deterministic one).
    """
    settings = settings or Settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        ctx = await asyncio.to_thread(open_context, settings, encoder, metrics)
        app.state.ctx = ctx
        # Load or build in the background: /healthz answers at once, /readyz turns 200 when the index serves.
        loader = asyncio.create_task(ctx.indexing.load_or_build())
        try:
            yield
        finally:
            if not loader.done():
                loader.cancel()
            with contextlib.suppress(BaseException):
                await loader
            ctx.close()

    app = FastAPI(
        title="lightguard",
        version="0.1.0",
        summary="Safety guardrail: built-in safety categories plus custom topic filters from a few examples",
        lifespan=lifespan,
    )
    add_exception_handlers(app)
    for router in (classify.router, moderations.router, topics.router, index.router, health.router):
        app.include_router(router)
    # Last added runs first: metrics see every request, including the 413s of the body limit.
    app.add_middleware(BodySizeLimitMiddleware, limit=settings.max_body_bytes)
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
