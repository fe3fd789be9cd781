"""The index: status, rebuild as a job (atomic swap, classify keeps answering), verification against the database."""

from __future__ import annotations

import os
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Response
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse

from service.deps import AdminKeyDep, ContextDep, SessionDep
from service.exception_handlers import error_responses
from service.schemas.common import ErrorRead
from service.schemas.index import (
    BuildProgress,
    IndexBuildRead,
    IndexJobRead,
    IndexRead,
    IndexVerifyRead,
    JobProgress,
    RebuildConflictRead,
)
from service.usecases.rebuilds import BuildView, build_location

router = APIRouter(prefix="/v1/index", tags=["index"], responses=error_responses(401, 403, 413, 422, 503))

DB_ID_MAX = 2**31 - 1  # ids are 32-bit on PostgreSQL: a larger one is a malformed request (422), not a 500
BuildId = Annotated[int, Path(ge=1, le=DB_ID_MAX, description="Build id (the rebuild's answer, or GET /v1/index)")]
LOCATION = {
    "Location": {"description": "Where to poll the build: `/v1/index/builds/{id}`", "schema": {"type": "string"}}
}
REBUILD_RESPONSES: dict[int | str, dict[str, Any]] = {
    202: {
        "description": "Accepted: the rebuild runs in the background; poll the Location",
        "headers": LOCATION,
        "links": {
            "GetBuild": {
                "operationRef": "#/paths/~1v1~1index~1builds~1{build_id}/get",
                "parameters": {"build_id": "$response.body#/id"},
            }
        },
    },
    200: {"model": IndexRead, "description": "Deprecated `?wait=true`: the index once the new version serves"},
    409: {
        "model": RebuildConflictRead,
        "description": "A full build is already running, in this process or another (`rebuild_running`); the body's"
        " `build_id` and the Location header name it",
        "headers": LOCATION,
    },
    500: {
        "model": ErrorRead,
        "description": "Deprecated `?wait=true` only: the build failed; the previous index keeps serving",
    },
}


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


def job_read(build: BuildView) -> IndexJobRead:
    fields = {name: getattr(build, name) for name in IndexJobRead.model_fields if name != "progress"}
    progress = None if build.embedded is None else JobProgress(embedded=build.embedded, total=build.total)
    return IndexJobRead(**fields, progress=progress)


@router.post("/rebuild", status_code=202, response_model=IndexJobRead, responses=REBUILD_RESPONSES)
async def rebuild_index(
    ctx: ContextDep,
    session: SessionDep,
    _key: AdminKeyDep,
    response: Response,
    wait: Annotated[
        bool,
        Query(
            description="Deprecated (removed in the next release): hold the request until the new version serves and"
            " answer 200 with the index, as before rebuilds were jobs",
            deprecated=True,
        ),
    ] = False,
) -> IndexJobRead | JSONResponse:
    """Start re-embedding every exemplar into a new guard, swapped in when done; answers at once (202) with the
    build to poll at the Location. One full build at a time across every worker and replica (409 names it)."""
    ctx.runtime.require()
    job = await ctx.rebuilds.start("rebuild")
    if wait:
        await job.wait()
        return JSONResponse(jsonable_encoder(index_read(ctx, session)), status_code=200)
    response.headers["Location"] = build_location(job.build_id)
    return job_read(ctx.rebuilds.read(session, job.build_id))


@router.get(
    "/builds/{build_id}",
    response_model=IndexJobRead,
    responses={404: {"model": ErrorRead, "description": "No build with this id (`not_found`)"}},
)
async def get_build(ctx: ContextDep, session: SessionDep, _key: AdminKeyDep, build_id: BuildId) -> IndexJobRead:
    """A build (a rebuild job, a start-up build or an edit) by id: status, progress, version once done, error once
    failed. Any worker or replica answers it from the database."""
    return job_read(ctx.rebuilds.read(session, build_id))


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
