"""The index: status, builds, rebuild progress, verification."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from service.schemas.common import ErrorRead


class IndexBuildRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int = Field(description="The build's id: `GET /v1/index/builds/{id}` reads it")
    version: int
    trigger: str
    model_id: str
    status: str
    exemplar_count: int
    checksum: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    topic: str | None = Field(default=None, description="The topic an edit changed; null for a full build")


class JobProgress(BaseModel):
    embedded: int = Field(description="Texts embedded so far")
    total: int | None = Field(
        description="Texts the build embeds (null until it knows; exemplars whose vectors are reused are not counted)"
    )


class IndexJobRead(BaseModel):
    """A full rebuild as a job (`POST /v1/index/rebuild` starts one); any worker or replica reads the same state."""

    id: int = Field(description="The build's id")
    status: Literal["queued", "running", "succeeded", "failed"] = Field(
        description="queued: accepted, waiting to start; running: embedding or catching up; succeeded: its version"
        " serves; failed: see `error` (the previous index kept serving)"
    )
    trigger: str = Field(description="Who asked: `rebuild` (the API), `cli`, `startup`, or an edit's purpose")
    progress: JobProgress | None = Field(description="How far it is; null while queued")
    version: int | None = Field(description="The index version it serves as, once succeeded; null before")
    exemplar_count: int | None = Field(description="Exemplars in the built index, once succeeded")
    checksum: str | None = Field(description="The built index's checksum, once succeeded")
    error: str | None = Field(description="Why it failed, once failed")
    started_at: datetime = Field(description="When it was asked for")
    finished_at: datetime | None = Field(description="When it succeeded or failed")
    heartbeat_at: datetime | None = Field(
        description="The building process's last sign of life (written every few seconds while it runs); a running"
        " build whose process is gone is reported failed"
    )
    holder: str | None = Field(description="The process building it, `host:pid`")
    topic: str | None = Field(default=None, description="The topic an edit changed; null for a full build")


class RebuildConflictRead(ErrorRead):
    """409 of `POST /v1/index/rebuild` (`rebuild_running`): a build is already running; `build_id` and the Location
    header name it."""

    build_id: int = Field(description="The running build's id (`GET /v1/index/builds/{build_id}`)")


class BuildProgress(BaseModel):
    done: int = Field(description="Texts embedded so far")
    total: int = Field(description="Texts the build embeds")


class IndexRead(BaseModel):
    status: Literal["loading", "building", "ready", "failed"]
    rebuilding: bool
    progress: BuildProgress | None = Field(
        default=None, description="While a rebuild asked for with POST /v1/index/rebuild embeds: how far it is"
    )
    version: int
    model: str
    count: int
    built_at: datetime | None
    error: str | None
    recent_builds: list[IndexBuildRead]
    worker: int = Field(description="Process id of the worker that answered (each of `--workers N` has its own index)")


class IndexVerifyRead(BaseModel):
    ok: bool
    problems: list[str]
    db_exemplars: int
    index_exemplars: int
    index_version: int
    worker: int = Field(description="Process id of the worker that answered")
