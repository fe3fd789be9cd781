"""The index: status, builds, rebuild progress, verification."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class IndexBuildRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

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
