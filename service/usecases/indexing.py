"""Deriving the index from the database: load or build at start-up, rebuilds, the edit protocol, verification.

The database is the source of truth and may be shared by several processes (`lightguard serve --workers N`, the
CLI). Every change to the index state first locks the one `index_lock` row (`IndexLockRepository`), so changes
commit one at a time and each gets the next version; each process keeps its live guard at a committed version and
follows the others' changes (`catch_up`, driven by `service.serving.follower` and run before every edit).

Consistency rule for edits (documented in docs/api.md): the caller holds `runtime.edit_lock`, calls `begin_edit`
(locks the index row, catches the guard up with the database), writes the database (flushed, not committed); the
change is then applied to the live guard *and committed* inside one critical section of the guard's write lock,
which publishes the new version only once the commit succeeded. If the commit fails, the change is undone in the
same critical section: no request ever saw it, the version is not bumped, and the database and the index stay as
they were. Applying before the commit is what lets a new topic's calibrated threshold be stored in the same
transaction.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy.orm import Session, sessionmaker

from index import (
    Exemplar,
    Guard,
    GuardConfig,
    IndexArtifactError,
    Role,
    UnknownLabelError,
    load_guard,
    read_guard_metadata,
    save_guard,
)
from service.db.engine import session_scope
from service.db.models import IndexBuild, Topic, utcnow
from service.db.repositories import IndexBuildRepository, IndexLockRepository, topic_order, topics_with_exemplars
from service.errors import IndexBuildError
from service.serving.interprocess import FileLock
from service.serving.runtime import GuardRuntime
from service.usecases.catchup import (
    Changes,
    VerifyReport,
    guard_digest,
    label_for,
    plan_sync,
    read_changes,
    state_digest,
    verify_guard,
)
from service.usecases.seed import load_background

# re-exported: the CLI and the topic use cases import them from here
__all__ = ["IndexService", "VerifyReport", "label_for", "state_digest", "verify_guard"]

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[int, int], None]


class IndexService:
    """Builds, loads, saves, edits and follows the live index on behalf of the API, the follower and the CLI."""

    def __init__(
        self,
        runtime: GuardRuntime,
        sessions: sessionmaker[Session],
        index_dir: Path,
        data_dir: Path,
        config: GuardConfig | None = None,
    ) -> None:
        self.config = config or GuardConfig()
        self.runtime = runtime
        self.sessions = sessions
        self.index_dir = index_dir
        self.data_dir = data_dir
        # one build at a time per LIGHTGUARD_HOME; artifact reads and writes never interleave across processes
        self.build_lock = FileLock(index_dir.parent / f".{index_dir.name}.build.lock")
        self.artifact_lock = FileLock(index_dir.parent / f".{index_dir.name}.artifact.lock")

    # ------------------------------------------------------------------ start-up
    async def load_or_build(self, progress: Progress | None = None) -> None:
        """Load the artifact when it matches the database and the encoder; otherwise log why and rebuild.

        An artifact saved a few versions back (another worker committed after it was written) is caught up with the
        edits committed since, then must match the database digest exactly; after a full build it is not used.
        """
        try:
            # Nothing edits before the index is installed (edits need it), so the build lock alone suffices.
            async with self.build_lock.hold_async():
                # Every build holds the build lock: a row still `building` now was cut off by a crash or kill.
                interrupted = await asyncio.to_thread(self._fail_interrupted)
                if interrupted:
                    log.warning("%d index build(s) left unfinished by a stopped process marked failed", interrupted)
                reason, stale = await self._load_artifact()
                if reason is None:
                    return
                log.warning(
                    "index artifact in %s not usable (%s); rebuilding from the database%s",
                    self.index_dir,
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
            return IndexBuildRepository(session).fail_unfinished(
                "interrupted: the process stopped during the build (the previous index stayed in use)"
            )

    async def _load_artifact(self) -> tuple[str | None, Guard | None]:
        """Install the saved guard caught up with the database. Returns (None, None) when installed, else why it is
        not usable and the stale guard if it could be read: the rebuild takes the vectors of its unchanged
        exemplars instead of re-encoding them (a scoring-config change then costs seconds, not minutes)."""
        try:
            meta, guard = await asyncio.to_thread(self._read_artifact)
        except IndexArtifactError as exc:
            return str(exc), None
        if guard.config != self.config:
            return "stale: the scoring configuration changed since it was saved", guard
        changes = await asyncio.to_thread(self._read_changes, int(meta.get("version", 0)), True)
        if changes.full:
            return "stale: the index was rebuilt after it was saved", guard
        if changes.count:
            plan = plan_sync(guard, changes)
            vectors = await asyncio.to_thread(guard.embed, plan.texts) if plan.add else None
            await asyncio.to_thread(plan.apply, guard, vectors)
            # changes.topics is in database id order, the order state_digest walks
            digest = guard_digest(guard, {name: i for i, name in enumerate(changes.topics)})
        else:
            digest = str(meta.get("db_digest"))
        if digest != changes.digest:
            return "stale: the database changed since it was saved", guard
        self.runtime.install(guard, changes.version)
        self.runtime.status.openai_keys = {name: t.openai_keys for name, t in changes.topics.items()}
        log.info("index v%d loaded from %s (%d exemplars)", changes.version, self.index_dir, len(guard))
        return None, None

    def _read_artifact(self) -> tuple[dict[str, Any], Guard]:
        with self.artifact_lock.hold():
            return read_guard_metadata(self.index_dir), load_guard(self.index_dir, self.runtime.encoder)

    # ------------------------------------------------------------------ rebuilds
    async def rebuild(self, trigger: str = "rebuild", progress: Progress | None = None) -> IndexBuild:
        """Re-embed every exemplar into a new guard, swap it in and bump the version.

        One build at a time per LIGHTGUARD_HOME (the build lock). Edits, here and in other processes, go on against
        the live guard while it builds; the new guard takes in every change committed meanwhile before it serves.
        """
        async with self.build_lock.hold_async():
            return await self._rebuild_locked(trigger, progress)

    def _start_build(self, trigger: str) -> tuple[list[Topic], int, int, int]:
        with session_scope(self.sessions) as session:
            IndexLockRepository(session).acquire(trigger)
            topics = topics_with_exemplars(session)
            builds = IndexBuildRepository(session)
            snapshot = builds.latest_ready_version()
            version = max(builds.latest_version(), self.runtime.version) + 1
            build = builds.add(
                IndexBuild(version=version, trigger=trigger, model_id=self.runtime.encoder.model_id, status="building")
            )
            session.expunge_all()
            return topics, snapshot, version, build.id

    async def _rebuild_locked(self, trigger: str, progress: Progress | None, reuse: Guard | None = None) -> IndexBuild:
        """`reuse`: a guard (same encoder) whose vectors of unchanged exemplars are taken instead of re-encoded."""
        runtime = self.runtime
        topics, snapshot, version, build_id = await asyncio.to_thread(self._start_build, trigger)
        labels = [label_for(t, recalibrate=True) for t in topics]
        exemplars = [Exemplar(e.id, e.text, t.name, cast(Role, e.role)) for t in topics for e in t.exemplars]
        exemplars.sort(key=lambda e: e.id)
        if runtime.snapshot is None:
            runtime.status.state = "building"
        runtime.status.rebuilding = True
        try:
            background = await asyncio.to_thread(load_background, self.data_dir)
            guard = await asyncio.to_thread(
                Guard.build, runtime.encoder, labels, exemplars, self.config, background, progress, reuse
            )
            # no edit of this process between catching the new guard up and swapping it in
            async with runtime.edit_lock:
                done = await asyncio.to_thread(self._finish_build, guard, build_id, snapshot, version)
                runtime.install(guard, done.version, done.finished_at)
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
        runtime.status.rebuilding = False
        log.info("index v%d built (%s): %d exemplars", done.version, trigger, len(guard))
        return done

    def _finish_build(self, guard: Guard, build_id: int, snapshot: int, version: int) -> IndexBuild:
        """Under the index lock: catch the new guard up with the changes committed while it was built (by any
        process), store the recalibrated thresholds, save the artifact, then commit the build as ready."""
        with session_scope(self.sessions) as session:
            IndexLockRepository(session).acquire("rebuild finish")
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
            done.status, done.finished_at = "ready", utcnow()
            done.exemplar_count, done.checksum = len(guard), guard.checksum()
            session.flush()
            self.runtime.status.openai_keys = {t.name: tuple(t.openai_keys) for t in topics}
            # saved before the commit: a process that sees this build ready finds its artifact in place
            self._write_artifact(guard, state_digest(topics), done.version)
            session.expunge(done)
            return done

    # ------------------------------------------------------------------ following other processes
    def latest_ready_version(self) -> int:
        """The newest committed version in the database (the follower's poll)."""
        with self.sessions() as session:
            return IndexBuildRepository(session).latest_ready_version()

    def _read_changes(self, since: int, every_topic: bool = False, locked: bool = False) -> Changes:
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
        changes = await asyncio.to_thread(self._read_changes, since, False, locked)
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
            meta, guard = self._read_artifact()
        except IndexArtifactError as exc:
            log.warning("artifact not loadable while following a full build (%s); diffing the live index", exc)
            return None
        if int(meta.get("version", 0)) < min_version or guard.config != self.config:
            return None
        return guard

    # ------------------------------------------------------------------ edits
    async def begin_edit(self, session: Session, purpose: str) -> None:
        """Lock the index for `session`'s transaction and catch the live guard up with the database.

        The caller holds `runtime.edit_lock`; the session's commit or rollback releases the index lock.
        """
        await asyncio.to_thread(IndexLockRepository(session).acquire, purpose)
        await self.catch_up(locked=True)

    async def commit_edit(
        self,
        session: Session,
        trigger: str,
        topic: str,
        change: Callable[[Guard], T],
        undo: Callable[[Guard], object],
        record: Callable[[T], None] | None = None,
    ) -> T:
        """Apply `change` to the live guard, let `record` write its result, commit, then publish the new version.

        The caller has called `begin_edit` and flushed its database changes of `topic` in `session`. If the commit
        fails, `undo` runs in the same critical section, so no classification ever sees the change.
        """
        runtime = self.runtime
        version = max(IndexBuildRepository(session).latest_version(), runtime.version) + 1

        def change_and_commit(guard: Guard) -> T:
            result = change(guard)
            try:
                if record is not None:
                    record(result)
                build = IndexBuild(
                    version=version,
                    trigger=trigger,
                    topic=topic,
                    model_id=runtime.encoder.model_id,
                    status="ready",
                    exemplar_count=len(guard),
                    finished_at=utcnow(),
                )
                IndexBuildRepository(session).add(build)
                session.commit()
            except BaseException:
                session.rollback()
                undo(guard)
                log.warning("edit %s rolled back: the database commit failed and the index change was undone", trigger)
                raise
            return result

        result = await runtime.apply(change_and_commit, version)
        await self._save(runtime.require().guard, version)
        return result

    # ------------------------------------------------------------------ artifact
    async def _save(self, guard: Guard, version: int) -> None:
        """Save the guard as version `version` (the caller holds `runtime.edit_lock`, so it cannot change)."""
        try:
            order = await asyncio.to_thread(self._topic_order)
            digest = await asyncio.to_thread(guard_digest, guard, order)
            await asyncio.to_thread(self._write_artifact, guard, digest, version)
        except Exception:
            # The database is the source of truth: a stale artifact is caught up or rebuilt at the next start.
            log.exception("could not save the index artifact to %s", self.index_dir)

    def _topic_order(self) -> dict[str, int]:
        with self.sessions() as session:
            return topic_order(session)

    def _write_artifact(self, guard: Guard, digest: str, version: int) -> None:
        meta: dict[str, Any] = {"db_digest": digest, "version": version, "model_id": guard.encoder.model_id}
        with self.artifact_lock.hold():
            # another process may have saved a newer committed version meanwhile: never replace it with an older one
            try:
                saved = int(read_guard_metadata(self.index_dir).get("version", 0))
            except IndexArtifactError:
                saved = 0
            if saved >= version and saved <= self._latest_version():
                return
            try:
                save_guard(guard, self.index_dir, meta)
            except OSError:
                log.exception("could not save the index artifact to %s", self.index_dir)

    def _latest_version(self) -> int:
        with self.sessions() as session:
            return IndexBuildRepository(session).latest_version()

    async def verify(self) -> VerifyReport:
        """Catch up, then compare the live guard with the database, both under the index lock (the caller holds
        `runtime.edit_lock`): with several processes, the answer is about this process's guard at the newest version.
        """
        session = self.sessions()
        try:
            await asyncio.to_thread(IndexLockRepository(session).acquire, "verify")
            await self.catch_up(locked=True)
            topics = await asyncio.to_thread(topics_with_exemplars, session)
            return verify_guard(self.runtime.require().guard, topics)
        finally:
            session.rollback()
            session.close()
