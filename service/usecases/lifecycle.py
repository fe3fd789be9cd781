"""The index's lifecycle: load or build it at start-up, rebuild it, verify it against the database.

The database is the source of truth and may be shared by several processes (`lightguard serve --workers N`, the
CLI). A build embeds every exemplar into a new guard while the live one keeps serving, then takes the index lock
(`IndexEdits.hold`), catches the new guard up with whatever was committed meanwhile, saves the artifact and commits
the build as ready before swapping it in. Edits of the live guard go through `service.usecases.edits`; following
other processes' changes is `service.usecases.following`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar, cast

from sqlalchemy.orm import Session, sessionmaker

from index import Exemplar, Guard, GuardConfig, IndexArtifactError, Role, UnknownLabelError
from service.db.engine import session_scope
from service.db.models import IndexBuild, Topic, utcnow
from service.db.repositories import IndexBuildRepository, IndexLockRepository, topics_with_exemplars
from service.errors import IndexBuildError
from service.serving.interprocess import FileLock
from service.serving.runtime import GuardRuntime
from service.usecases.artifacts import IndexArtifacts
from service.usecases.build_liveness import BuildHeartbeat, abandon_dead, holder_name
from service.usecases.catchup import (
    VerifyReport,
    guard_digest,
    label_for,
    plan_sync,
    read_changes,
    state_digest,
    verify_guard,
)
from service.usecases.edits import IndexEdits
from service.usecases.following import IndexFollowing
from service.usecases.seed import load_background

log = logging.getLogger(__name__)
Progress = Callable[[int, int], None]
_T = TypeVar("_T")


class IndexLifecycle:
    """Loads, builds and verifies the live index on behalf of the app, the API and the CLI."""

    def __init__(
        self,
        runtime: GuardRuntime,
        sessions: sessionmaker[Session],
        data_dir: Path,
        config: GuardConfig,
        artifacts: IndexArtifacts,
        following: IndexFollowing,
        edits: IndexEdits,
    ) -> None:
        self.config = config
        self.runtime = runtime
        self.sessions = sessions
        self.data_dir = data_dir
        self.artifacts = artifacts
        self.following = following
        self.edits = edits
        index_dir = artifacts.index_dir
        # one build at a time per LIGHTGUARD_HOME
        self.build_lock = FileLock(index_dir.parent / f".{index_dir.name}.build.lock")

    # ------------------------------------------------------------------ start-up
    async def load_or_build(self, progress: Progress | None = None) -> None:
        """Load the artifact when it matches the database and the encoder; otherwise log why and rebuild.

        An artifact saved a few versions back (another worker committed after it was written) is caught up with the
        edits committed since, then must match the database digest exactly; after a full build it is not used.
        """
        try:
            # Nothing edits before the index is installed (edits need it), so the build lock alone suffices.
            async with self.build_lock.hold_async():
                # A row still `building` whose process is gone was cut off by a crash or kill (build_liveness).
                interrupted = await _to_thread_to_the_end(self._fail_interrupted)
                if interrupted:
                    log.warning("%d index build(s) left unfinished by a stopped process marked failed", interrupted)
                reason, stale = await self._load_artifact()
                if reason is None:
                    return
                log.warning(
                    "index artifact in %s not usable (%s); rebuilding from the database%s",
                    self.artifacts.index_dir,
                    reason,
                    " (reusing its vectors of unchanged exemplars)" if stale is not None else "",
                )
                await self._rebuild_locked("startup", progress, reuse=stale)
        except Exception as exc:
            self.runtime.status.state = "failed"
            self.runtime.status.error = f"index load failed: {exc}; fix the cause and restart"
            log.exception("index load failed")
            raise

    def _fail_interrupted(self) -> int:
        with session_scope(self.sessions) as session:
            return len(abandon_dead(session))

    async def _load_artifact(self) -> tuple[str | None, Guard | None]:
        """Install the saved guard caught up with the database. Returns (None, None) when installed, else why it is
        not usable and the stale guard if it could be read: the rebuild takes the vectors of its unchanged
        exemplars instead of re-encoding them (a scoring-config change then costs seconds, not minutes)."""
        try:
            meta, guard = await _to_thread_to_the_end(self.artifacts.read, self.runtime.encoder)
        except IndexArtifactError as exc:
            return str(exc), None
        if guard.config != self.config:
            return "stale: the scoring configuration changed since it was saved", guard
        changes = await _to_thread_to_the_end(self.following.read_changes, int(meta.get("version", 0)), True)
        if changes.full:
            return "stale: the index was rebuilt after it was saved", guard
        if changes.count:
            plan = plan_sync(guard, changes)
            vectors = await asyncio.to_thread(guard.embed, plan.texts) if plan.add else None
            await asyncio.to_thread(plan.apply, guard, vectors)
        if changes.count or "db_digest" not in meta:  # edits save no digest (a walk over every exemplar)
            # changes.topics is in database id order, the order state_digest walks
            order = {name: i for i, name in enumerate(changes.topics)}
            digest = await asyncio.to_thread(guard_digest, guard, order)
        else:
            digest = str(meta.get("db_digest"))
        if digest != changes.digest:
            return "stale: the database changed since it was saved", guard
        self.runtime.install(guard, changes.version)
        self.runtime.status.openai_keys = {name: t.openai_keys for name, t in changes.topics.items()}
        log.info("index v%d loaded from %s (%d exemplars)", changes.version, self.artifacts.index_dir, len(guard))
        return None, None

    # ------------------------------------------------------------------ rebuilds
    async def rebuild(
        self, trigger: str = "rebuild", progress: Progress | None = None, queued: BuildHeartbeat | None = None
    ) -> IndexBuild:
        """Re-embed every exemplar into a new guard, swap it in and bump the version.

        One build at a time per LIGHTGUARD_HOME (the build lock); `RebuildJobs` also refuses a second one across
        processes. Edits, here and in other processes, go on against the live guard while it builds; the new guard
        takes in every change committed meanwhile before it serves. `queued`: the heartbeat of the `building` row
        `RebuildJobs.start` committed for this build (it beats from now, while the build waits for the lock);
        without one, the row is added when the build starts.
        """
        if queued is not None:
            queued.start()
        try:
            async with self.build_lock.hold_async():
                return await self._rebuild_locked(trigger, progress, beat=queued)
        finally:
            if queued is not None:
                queued.stop()

    def _start_build(self, trigger: str, beat: BuildHeartbeat | None) -> tuple[list[Topic], int, int, BuildHeartbeat]:
        created: BuildHeartbeat | None = None
        try:
            with session_scope(self.sessions) as session:
                IndexLockRepository(session).acquire(trigger)
                topics = topics_with_exemplars(session)
                builds = IndexBuildRepository(session)
                snapshot = builds.latest_ready_version()
                version = max(builds.latest_version(), self.runtime.version) + 1
                if beat is None:
                    build = builds.add(
                        IndexBuild(
                            version=version,
                            trigger=trigger,
                            model_id=self.runtime.encoder.model_id,
                            status="building",
                            embedded=0,
                            holder=holder_name(),
                            heartbeat_at=utcnow(),
                        )
                    )
                    beat = created = BuildHeartbeat(self.sessions, build.id)  # running before the row commits
                else:
                    queued = builds.get(beat.build_id)
                    if queued is None or queued.status != "building":
                        reason = queued.error if queued is not None else "its row is gone"
                        raise IndexBuildError(f"build {beat.build_id} was ended before it started: {reason}")
                    if builds.latest_version() == queued.version:  # nothing committed since it was queued
                        version = queued.version
                    # else edits committed while it was queued took versions above its own: it takes a new one
                    queued.version, queued.embedded, queued.heartbeat_at = version, 0, utcnow()
                beat.update(0, None)
                session.flush()  # before expunging: an expunged object's pending changes are dropped
                session.expunge_all()
        except BaseException:
            if created is not None:
                created.stop()
            raise
        return topics, snapshot, version, beat

    async def _rebuild_locked(
        self, trigger: str, progress: Progress | None, reuse: Guard | None = None, beat: BuildHeartbeat | None = None
    ) -> IndexBuild:
        """`reuse`: a guard (same encoder) whose vectors of unchanged exemplars are taken instead of re-encoded;
        `beat`: the heartbeat of a queued row to build (see `rebuild`)."""
        topics, snapshot, version, running = await _to_thread_to_the_end(self._start_build, trigger, beat)
        try:
            return await self._build(trigger, progress, reuse, running, topics, snapshot, version)
        finally:
            running.stop()

    async def _build(
        self,
        trigger: str,
        progress: Progress | None,
        reuse: Guard | None,
        beat: BuildHeartbeat,
        topics: list[Topic],
        snapshot: int,
        version: int,
    ) -> IndexBuild:
        runtime, build_id = self.runtime, beat.build_id
        beat.start()

        def track(done: int, total: int) -> None:  # from the build thread, after each batch
            beat.update(done, total)
            if progress is not None:
                progress(done, total)

        labels = [label_for(t, recalibrate=True) for t in topics]
        exemplars = [Exemplar(e.id, e.text, t.name, cast(Role, e.role)) for t in topics for e in t.exemplars]
        exemplars.sort(key=lambda e: e.id)
        if runtime.snapshot is None:
            runtime.status.state = "building"
        runtime.status.rebuilding = True
        try:
            background = await asyncio.to_thread(load_background, self.data_dir)
            guard = await asyncio.to_thread(
                Guard.build,
                runtime.encoder,
                labels,
                exemplars,
                self.config,
                background,
                track,
                reuse,
                cache=self.artifacts.embedding_cache,
            )
            # no edit of this process or another between catching the new guard up and swapping it in
            session = self.sessions()
            try:
                async with self.edits.hold(session, "rebuild finish"):
                    done = await _to_thread_to_the_end(
                        self._finish_build, session, guard, build_id, snapshot, version, beat.progress
                    )
                    if trigger == "startup":  # counted before it serves: /readyz and the metric agree
                        self.artifacts.loaded("build")
                    runtime.install(guard, done.version, done.finished_at)
            finally:
                session.close()
            # installed and serving: a client that saw the build succeed must not see a rebuild still running while
            # the artifact is published below (seconds for the seed index; a test saw `rebuilding` after `succeeded`)
            runtime.status.rebuilding = False
            # committed: replicas with other homes load it from the database (after the commit, outside the lock)
            await _to_thread_to_the_end(self.artifacts.publish, done.version)
        except Exception as exc:
            runtime.status.rebuilding = False
            with session_scope(self.sessions) as session:
                failed = session.get(IndexBuild, build_id)
                if failed is not None and failed.status == "building":
                    failed.status, failed.error, failed.finished_at = "failed", str(exc), utcnow()
            log.exception("index build v%d failed", version)
            if runtime.snapshot is None:
                runtime.status.state = "failed"
                runtime.status.error = f"index build failed: {exc}"
            raise IndexBuildError(f"index build failed: {exc}; the previous index keeps serving") from exc
        log.info("index v%d built (%s): %d exemplars", done.version, trigger, len(guard))
        return done

    def _finish_build(
        self,
        session: Session,
        guard: Guard,
        build_id: int,
        snapshot: int,
        version: int,
        progress: tuple[int | None, int | None],
    ) -> IndexBuild:
        """Under the index lock (`session`'s): catch the new guard up with the changes committed while it was built
        (by any process), store the recalibrated thresholds, save the artifact, then commit the build as ready."""
        changes = read_changes(session, snapshot)
        topics = topics_with_exemplars(session)
        if changes.count:
            plan = plan_sync(guard, changes)
            plan.apply(guard, guard.embed(plan.texts) if plan.add else None)
            # a rebuild recalibrates every calibrated custom topic, those changed during the build included
            calibrated = {t.name for t in topics if t.kind == "custom" and t.threshold_source == "calibrated"}
            for name in sorted(plan.touched & calibrated):
                with contextlib.suppress(UnknownLabelError):  # a topic left without positives has nothing to fit
                    guard.calibrate_topic(name)
        stored = guard.labels
        for topic in topics:
            label = stored.get(topic.name)
            if topic.kind == "custom" and topic.threshold_source == "calibrated" and label is not None:
                topic.threshold = label.threshold
        builds = IndexBuildRepository(session)
        latest = builds.latest_version()
        done = session.get(IndexBuild, build_id)
        assert done is not None
        # a version above every committed change: other processes' edits may have taken versions after ours
        done.version = version if latest == version else latest + 1
        # error: a replica that started meanwhile (another home) marked this build interrupted; it was not
        done.status, done.finished_at, done.error = "ready", utcnow(), None
        done.exemplar_count, done.checksum = len(guard), guard.checksum()
        done.embedded, done.total = progress
        session.flush()
        self.runtime.status.openai_keys = {t.name: tuple(t.openai_keys) for t in topics}
        # saved before the commit: a process that sees this build ready finds its artifact in place
        self.artifacts.write(guard, state_digest(topics), done.version)
        session.commit()
        session.expunge(done)
        return done

    def recent_builds(self, session: Session, limit: int) -> list[IndexBuild]:
        """The newest `limit` builds and edits, newest first."""
        return IndexBuildRepository(session).recent(limit)

    async def verify(self) -> tuple[VerifyReport, int]:
        """Catch up, then compare the live guard with the database, both under the index lock: with several
        processes, the answer is about this process's guard at the newest version. Returns the report and the
        version it is about."""
        session = self.sessions()
        try:
            async with self.edits.read(session, "verify"):
                topics = await _to_thread_to_the_end(topics_with_exemplars, session)
                return verify_guard(self.runtime.require().guard, topics), self.runtime.version
        finally:
            session.close()


async def _to_thread_to_the_end(fn: Callable[..., _T], *args: object) -> _T:
    """`fn(*args)` in a thread that a cancellation does not leave behind. Every database step of loading and
    building runs so: a server stopping meanwhile (a test that ends at once, a restart seconds after /readyz while
    the start-up build's artifact is stored) waits for the step before it disposes the database engine, instead of
    disposing it under a thread that holds one of its connections (the connection leaked, an artifact was cut off).
    Embedding steps touch no database and are left to run out on their own."""
    task = asyncio.ensure_future(asyncio.to_thread(fn, *args))
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        await asyncio.wait([task])
        raise
