"""The index: status, rebuild (atomic swap, classify keeps answering), verification against the database."""

from __future__ import annotations

import os

from fastapi import APIRouter

from service.deps import AdminKeyDep, ContextDep, SessionDep
from service.exception_handlers import error_responses
from service.schemas.index import BuildProgress, IndexBuildRead, IndexRead, IndexVerifyRead

router = APIRouter(prefix="/v1/index", tags=["index"], responses=error_responses(401, 403, 413, 422, 503))


def index_read(ctx: ContextDep, session: SessionDep) -> IndexRead:
    snap = ctx.runtime.snapshot
    status = ctx.runtime.status
    builds = [IndexBuildRead.model_validate(b) for b in ctx.lifecycle.recent_builds(session, 10)]
    progress = status.build_progress
    return IndexRead(
        status=status.state,
        rebuilding=status.rebuilding,
        progress=BuildProgress(done=progress[0], total=progress[1]) if progress and status.rebuilding else None,
        version=snap.version if snap else 0,
        model=snap.model_id if snap else ctx.runtime.encoder.model_id,
        count=len(snap.guard) if snap else 0,
        built_at=snap.built_at if snap else None,
        error=status.error,
        recent_builds=builds,
        worker=os.getpid(),
    )


@router.get("", response_model=IndexRead)
async def get_index(ctx: ContextDep, session: SessionDep, _key: AdminKeyDep) -> IndexRead:
    return index_read(ctx, session)


@router.post("/rebuild", response_model=IndexRead)
async def rebuild_index(ctx: ContextDep, session: SessionDep, _key: AdminKeyDep) -> IndexRead:
    """Re-embed every exemplar into a new guard and swap it in; returns when the new version serves."""
    ctx.runtime.require()
    status = ctx.runtime.status

    def track(done: int, total: int) -> None:  # called from the build thread; GET /v1/index shows it
        status.build_progress = (done, total)

    try:
        await ctx.lifecycle.rebuild("rebuild", track)
    finally:
        status.build_progress = None
    return index_read(ctx, session)


@router.get("/verify", response_model=IndexVerifyRead)
async def verify_index(ctx: ContextDep, _key: AdminKeyDep) -> IndexVerifyRead:
    """Does the live index hold exactly the database's exemplars and labels?"""
    report, version = await ctx.lifecycle.verify()
    return IndexVerifyRead(
        ok=report.ok,
        problems=report.problems,
        db_exemplars=report.db_exemplars,
        index_exemplars=report.index_exemplars,
        index_version=version,
        worker=os.getpid(),
    )
