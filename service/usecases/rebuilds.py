"""Rebuilds as jobs (issue 19): `POST /v1/index/rebuild` starts one and answers at once; any process can report it.

One full build at a time across every process on the database: `start` takes the index lock (the `index_lock` row
every edit and build takes first), fails the rows of builds whose process is gone (`build_liveness`), refuses with
`RebuildRunningError` while another build is running anywhere (a start-up build of another replica included), and
commits the new build's row as queued (`building`, nothing embedded yet), all in one transaction. `launch` runs it
in this process's event loop; the build writes its progress and heartbeat to its row, so a poll answered by another
worker or replica sees the same job.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import session_scope
from service.db.models import IndexBuild, utcnow
from service.db.repositories import IndexBuildRepository, IndexLockRepository
from service.errors import NotFoundError, RebuildRunningError
from service.usecases.build_liveness import BuildHeartbeat, abandon_dead, gone_reason, holder_name
from service.usecases.lifecycle import IndexLifecycle

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]

CANCELLED = "cancelled: the server stopped before the build finished; the previous index stayed in use"


JobStatus = Literal["queued", "running", "succeeded", "failed"]


@dataclass(frozen=True, slots=True)
class BuildView:
    """A build as a job: `building` reads `queued` until it starts embedding, then `running`; `ready` reads
    `succeeded`. The version, count and checksum only once it succeeded, the error only once it failed."""

    id: int
    status: JobStatus
    trigger: str
    embedded: int | None
    total: int | None
    version: int | None
    exemplar_count: int | None
    checksum: str | None
    error: str | None
    started_at: datetime
    finished_at: datetime | None
    heartbeat_at: datetime | None
    holder: str | None
    topic: str | None

    @classmethod
    def of(cls, build: IndexBuild) -> BuildView:
        status: JobStatus = "failed"
        if build.status == "building":
            status = "queued" if build.embedded is None else "running"
        elif build.status == "ready":
            status = "succeeded"
        done = status == "succeeded"
        return cls(
            id=build.id,
            status=status,
            trigger=build.trigger,
            embedded=build.embedded,
            total=build.total,
            version=build.version if done else None,
            exemplar_count=build.exemplar_count if done else None,
            checksum=build.checksum if done else None,
            error=build.error if status == "failed" else None,
            started_at=build.started_at,
            finished_at=build.finished_at,
            heartbeat_at=build.heartbeat_at,
            holder=build.holder,
            topic=build.topic,
        )


@dataclass(frozen=True, slots=True)
class RebuildJob:
    """A rebuild this process runs: its build id and the task that ends when the new index serves (or fails)."""

    build_id: int
    task: asyncio.Task[IndexBuild]

    async def wait(self) -> IndexBuild:
        """The build once it serves (raises its error); the build goes on if the waiter is cancelled."""
        return await asyncio.shield(self.task)


def build_location(build_id: int) -> str:
    """Where a build is polled."""
    return f"/v1/index/builds/{build_id}"


class RebuildJobs:
    """Starts, runs and reads full rebuilds of the index on behalf of the API and the CLI."""

    def __init__(self, lifecycle: IndexLifecycle, sessions: sessionmaker[Session]) -> None:
        self.lifecycle = lifecycle
        self.sessions = sessions
        self._tasks: dict[int, asyncio.Task[IndexBuild]] = {}

    async def start(self, trigger: str = "rebuild", progress: Progress | None = None) -> RebuildJob:
        """Queue a rebuild and run it in the background of this process.

        Raises:
            RebuildRunningError: a build is running (in any process); it names that build.
        """
        build_id, beat = await asyncio.to_thread(self._queue, trigger)
        task = asyncio.create_task(self._run(trigger, beat, progress), name=f"rebuild-{build_id}")
        self._tasks[build_id] = task
        task.add_done_callback(lambda done: self._forget(build_id, done))
        return RebuildJob(build_id, task)

    def _queue(self, trigger: str) -> tuple[int, BuildHeartbeat]:
        with session_scope(self.sessions) as session:
            IndexLockRepository(session).acquire(f"{trigger} request")
            abandon_dead(session)
            builds = IndexBuildRepository(session)
            running = builds.building()
            if running:
                session.commit()  # the abandoned rows stay failed
                found = running[0]
                raise RebuildRunningError(
                    f"a full build of the index is already {'queued' if found.embedded is None else 'running'} "
                    f"(build {found.id}, asked for by {found.trigger}, {found.holder or 'unknown process'}); "
                    f"poll GET {build_location(found.id)} and rebuild again once it has finished",
                    found.id,
                )
            version = max(builds.latest_version(), self.lifecycle.runtime.version) + 1
            build = builds.add(
                IndexBuild(
                    version=version,  # provisional: assigned again when the build starts
                    trigger=trigger,
                    model_id=self.lifecycle.runtime.encoder.model_id,
                    status="building",
                    holder=holder_name(),
                    heartbeat_at=utcnow(),
                )
            )
            beat = BuildHeartbeat(self.sessions, build.id)  # this process runs it from before the row commits
            try:
                session.commit()
            except BaseException:
                beat.stop()
                raise
        return build.id, beat

    async def _run(self, trigger: str, beat: BuildHeartbeat, progress: Progress | None) -> IndexBuild:
        status = self.lifecycle.runtime.status

        def track(done: int, total: int) -> None:  # GET /v1/index of this process shows it too
            status.build_progress = (done, total)
            if progress is not None:
                progress(done, total)

        try:
            return await self.lifecycle.rebuild(trigger, track, queued=beat)
        except asyncio.CancelledError:
            self._end(beat.build_id, CANCELLED)  # the server is stopping: no thread hop left to take
            raise
        except Exception as exc:
            # a failure before the build started (the lifecycle fails the row of one that started)
            await asyncio.to_thread(self._end, beat.build_id, f"{exc}")
            raise
        finally:
            beat.stop()
            status.build_progress = None

    def _end(self, build_id: int, error: str) -> None:
        with session_scope(self.sessions) as session:
            build = IndexBuildRepository(session).get(build_id)
            if build is not None and build.status == "building":
                IndexBuildRepository(session).fail(build, error)

    def _forget(self, build_id: int, task: asyncio.Task[IndexBuild]) -> None:
        self._tasks.pop(build_id, None)
        if not task.cancelled() and task.exception() is not None:  # logged by the lifecycle; retrieved here
            log.info("rebuild %d failed: %s", build_id, task.exception())

    def read(self, session: Session, build_id: int) -> BuildView:
        """A build (or edit) by id; a running one whose process is gone is failed first (`build_liveness`).

        Raises:
            NotFoundError: no such build.
        """
        builds = IndexBuildRepository(session)
        build = builds.get(build_id)
        if build is None:
            raise NotFoundError(f"no index build {build_id}; GET /v1/index lists the recent ones", "build_id")
        if build.status == "building" and (reason := gone_reason(build, utcnow())) is not None:
            builds.fail(build, f"{reason}; the previous index stayed in use")
        return BuildView.of(build)

    async def join(self) -> None:
        """Wait until the rebuilds this process runs have ended, their artifacts stored (a build reads
        `succeeded` once it serves, just before its artifact reaches the database for other replicas)."""
        for task in list(self._tasks.values()):
            with contextlib.suppress(Exception):
                await asyncio.shield(task)

    async def aclose(self) -> None:
        """Cancel the rebuilds this process runs (the server is stopping): their rows are marked failed."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
