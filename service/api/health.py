"""Liveness, readiness (503 until the index is loaded) and Prometheus metrics."""

from __future__ import annotations

import os

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST

from service.deps import ContextDep
from service.schemas.common import HealthRead

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=HealthRead)
async def healthz() -> HealthRead:
    return HealthRead(status="ok")


@router.get("/readyz", response_model=HealthRead, responses={503: {"description": "index not loaded yet"}})
async def readyz(ctx: ContextDep) -> HealthRead | JSONResponse:
    snap = ctx.runtime.snapshot
    if snap is None:
        status = ctx.runtime.status
        detail = status.error or f"index {status.state}; retry shortly"
        return JSONResponse({"error": "index_not_ready", "detail": detail}, status_code=503)
    return HealthRead(status="ready", index_version=snap.version, worker=os.getpid())


@router.get("/metrics", include_in_schema=False)
async def metrics(ctx: ContextDep) -> Response:
    return Response(ctx.metrics.render(), media_type=CONTENT_TYPE_LATEST)
