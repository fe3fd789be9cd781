"""Following other processes: catching this worker's live index up with versions they committed, and the poll.

Each worker process holds its own guard in memory. The database is the source of truth and every committed change
is a new `index_builds` version, so a worker polls the newest committed version (one indexed `max()` query every
LIGHTGUARD_FOLLOW_INTERVAL_S) and, when it is behind, catches up under its edit lock: the topics changed since its
version are re-read and diffed into its guard (only new exemplars are embedded), and after another process's full
rebuild the saved artifact is loaded. Edits catch up before they apply their own change (`service.usecases.edits`),
so a worker never builds on a state it has not seen; between polls a worker can answer from a version up to one
interval (plus the catch-up itself) older than the newest, and every answer names the version it used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker

from index import Guard, GuardConfig, IndexArtifactError, read_guard_metadata
from service.db.artifacts import IndexArtifactRepository
from service.db.models import utcnow
from service.db.repositories import IndexBuildRepository, IndexLockRepository
from service.serving.runtime import GuardRuntime
from service.usecases.artifacts import IndexArtifacts
from service.usecases.catchup import Changes, plan_sync, read_changes

log = logging.getLogger(__name__)
# A full build stores its artifact in the database right after it commits; a poll in between waits for it this long
# (then diffs and refits its own head), so that replicas on other hosts serve the builder's index bit for bit.
ARTIFACT_WAIT_S = 10.0


class IndexFollowing:
    """Reads what other processes committed and brings the live guard level with it."""

    def __init__(
        self, runtime: GuardRuntime, sessions: sessionmaker[Session], artifacts: IndexArtifacts, config: GuardConfig
    ) -> None:
        self.runtime = runtime
        self.sessions = sessions
        self.artifacts = artifacts
        self.config = config

    def latest_ready_version(self) -> int:
        """The newest committed version in the database (the follower's poll)."""
        with self.sessions() as session:
            return IndexBuildRepository(session).latest_ready_version()

    def artifact_pending(self, since: int) -> bool:
        """Whether a full build committed after `since` finished under ARTIFACT_WAIT_S ago and its artifact is
        neither in this home nor (yet) in the database: the poll then waits for it rather than refit on its own."""
        with self.sessions() as session:
            full = [b for b in IndexBuildRepository(session).ready_since(since) if b.topic is None]
            finished = full[-1].finished_at if full else None
            if finished is None or utcnow() - finished > timedelta(seconds=ARTIFACT_WAIT_S):
                return False
            version = full[-1].version
            if IndexArtifactRepository(session).newest_version() >= version:
                return False
        with self.artifacts.lock.hold():
            try:
                return int(read_guard_metadata(self.artifacts.index_dir).get("version", 0)) < version
            except IndexArtifactError:
                return True

    def read_changes(self, since: int, every_topic: bool = False, locked: bool = False) -> Changes:
        """The changes after `since`, read as one state: under the caller's index lock (`locked`); else without
        it when no change committed between two reads of the newest version (every change commits with a new
        version), so a follower neither waits behind editors nor holds them up; else under the lock."""
        if not locked:
            for _ in range(3):
                with self.sessions() as session:
                    builds = IndexBuildRepository(session)
                    before = builds.latest_ready_version()
                    changes = read_changes(session, since, every_topic)
                    if builds.latest_ready_version() == before:
                        return changes
        # In a session of its own even when the caller holds the lock: reading the topics into the caller's session
        # would leave their exemplar collections loaded from before the caller's own change.
        session = self.sessions()
        try:
            if not locked:
                IndexLockRepository(session).acquire("read")
            return read_changes(session, since, every_topic)
        finally:
            session.rollback()  # a read: release the lock without writing it
            session.close()

    async def catch_up(self, locked: bool = False) -> int | None:
        """Bring the live guard level with the newest committed version; returns that version, or None if level.

        The caller holds `runtime.edit_lock`; `locked`: the caller's transaction already holds the index lock. After
        a full build by another process its saved artifact is loaded (the same guard, bit for bit) when it is at
        least that new; otherwise the live guard is diffed against every topic and its head refitted.
        """
        runtime = self.runtime
        since = runtime.version
        changes = await asyncio.to_thread(self.read_changes, since, False, locked)
        if not changes.count:
            return None
        fresh = await asyncio.to_thread(self._artifact_from, changes.newest_full) if changes.full else None
        target = fresh if fresh is not None else runtime.require().guard
        plan = plan_sync(target, changes, refit_head=changes.full and fresh is None)
        vectors = await asyncio.to_thread(target.embed, plan.texts) if plan.add else None
        if fresh is not None:
            await asyncio.to_thread(plan.apply, fresh, vectors)
            runtime.install(fresh, changes.version)
        else:
            await runtime.apply(lambda guard: plan.apply(guard, vectors), changes.version)
        keys = {name: t.openai_keys for name, t in changes.topics.items()}
        runtime.status.openai_keys = keys if changes.full else runtime.status.openai_keys | keys
        how = "" if not changes.full else " with a full build (artifact loaded)" if fresh else " with a full build"
        log.info("index v%d -> v%d: followed %d change(s)%s", since, changes.version, changes.count, how)
        return changes.version

    def _artifact_from(self, min_version: int) -> Guard | None:
        """The saved guard if it is at least `min_version` and built with this encoder and scoring configuration."""
        try:
            meta, guard = self.artifacts.read(self.runtime.encoder)
        except IndexArtifactError as exc:
            log.warning("artifact not loadable while following a full build (%s); diffing the live index", exc)
            return None
        if int(meta.get("version", 0)) < min_version or guard.config != self.config:
            return None
        return guard


class IndexFollower:
    """Polls the database for index versions committed by other processes and catches the live guard up."""

    def __init__(self, following: IndexFollowing, interval_s: float) -> None:
        self.following = following
        self.interval_s = interval_s
        self.followed = 0  # catch-ups done (a test and operator aid; also in the log)
        self._failures = 0
        self._stopping = asyncio.Event()

    async def run(self) -> None:
        """Poll until `stop` (the app's lifespan runs this as a task)."""
        while not self._stopping.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stopping.wait(), self.interval_s)
                return
            await self.step()

    def stop(self) -> None:
        """End `run` after the poll in flight. Not a cancel: a cancelled poll's thread would go on with a database
        session and return its connection to an engine the app has already disposed (a leaked connection)."""
        self._stopping.set()

    async def step(self) -> int | None:
        """One poll: catch up when the database holds a newer committed version; returns the version reached."""
        runtime = self.following.runtime
        # Not loaded yet, or this process is editing or rebuilding (it catches up itself under the same lock).
        if runtime.snapshot is None or runtime.edit_lock.locked():
            return None
        try:
            latest = await asyncio.to_thread(self.following.latest_ready_version)
            if latest <= runtime.version or await asyncio.to_thread(self.following.artifact_pending, runtime.version):
                self._failures = 0
                return None
            async with runtime.edit_lock:
                reached = await self.following.catch_up()
        except asyncio.CancelledError:
            raise
        except Exception:
            # A database outage must not end the loop: requests report it (503) and the next poll tries again.
            self._failures += 1
            if self._failures == 1 or self._failures % 100 == 0:
                log.exception("following the database's index versions failed (%d in a row)", self._failures)
            return None
        self._failures = 0
        if reached is not None:
            self.followed += 1
        return reached
