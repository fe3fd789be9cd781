"""Deriving the index from the database: load or build at start-up, rebuilds, the edit protocol, verification.

Consistency rule for edits (documented in docs/api.md): the caller holds `runtime.edit_lock`, writes the database
(flushed, not committed), then the change is applied to the live guard under its write lock with the next version,
then the session commits. If the commit fails, the change is undone on the guard (and the version bumped again, so
versions stay monotonic) before the error propagates: a failing request leaves the database and the index as they
were. Applying before the commit is what lets a new topic's calibrated threshold be stored in the same transaction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

from sqlalchemy.orm import Session, sessionmaker

from index import (
    Action,
    Exemplar,
    Guard,
    GuardConfig,
    IndexArtifactError,
    Label,
    LabelKind,
    Role,
    load_guard,
    read_guard_metadata,
    save_guard,
)
from service.db import session_scope
from service.errors import IndexBuildError
from service.models import IndexBuild, Topic, utcnow
from service.repositories import IndexBuildRepository, topics_with_exemplars
from service.runtime import GuardRuntime
from service.usecases.seed import load_background

log = logging.getLogger(__name__)
T = TypeVar("T")
Progress = Callable[[int, int], None]


def label_for(topic: Topic, recalibrate: bool = False) -> Label:
    """The guard label of a topic; with `recalibrate`, calibrated custom thresholds are left for the guard to set."""
    threshold = topic.threshold
    if recalibrate and topic.kind == "custom" and topic.threshold_source == "calibrated":
        threshold = None
    return Label(topic.name, cast(LabelKind, topic.kind), cast(Action, topic.action), threshold, topic.enabled)


def state_digest(topics: list[Topic]) -> str:
    """SHA-256 over everything the index is derived from: labels and exemplars (ids, texts, roles)."""
    h = hashlib.sha256()
    for topic in sorted(topics, key=lambda t: t.id):
        h.update(repr((topic.name, topic.kind, topic.action, topic.enabled, topic.threshold)).encode())
        for e in sorted(topic.exemplars, key=lambda e: e.id):
            h.update(repr((e.id, e.role, e.text)).encode())
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    problems: list[str]
    db_exemplars: int
    index_exemplars: int


def verify_guard(guard: Guard, topics: list[Topic]) -> VerifyReport:
    """Does the guard hold exactly the database's exemplars and labels?"""
    problems: list[str] = []
    expected = {e.id: (e.text, t.name, e.role) for t in topics for e in t.exemplars}
    actual = {i: (e.text, e.label, e.role) for i, e in guard.exemplars.items()}
    missing = sorted(set(expected) - set(actual))
    extra = sorted(set(actual) - set(expected))
    changed = sorted(i for i in set(expected) & set(actual) if expected[i] != actual[i])
    if missing:
        problems.append(f"{len(missing)} exemplars missing from the index (ids {missing[:10]})")
    if extra:
        problems.append(f"{len(extra)} exemplars in the index but not in the database (ids {extra[:10]})")
    if changed:
        problems.append(f"{len(changed)} exemplars differ in text, topic or role (ids {changed[:10]})")
    labels = guard.labels
    for topic in topics:
        label = labels.get(topic.name)
        if label is None:
            problems.append(f"topic {topic.name!r} is not in the index")
            continue
        want = label_for(topic)
        if (label.kind, label.action, label.enabled, label.threshold) != (
            want.kind,
            want.action,
            want.enabled,
            want.threshold,
        ):
            problems.append(f"topic {topic.name!r} differs: index {label} vs database {want}")
    names = {t.name for t in topics}
    problems.extend(f"label {name!r} is in the index but not in the database" for name in labels if name not in names)
    return VerifyReport(not problems, problems, len(expected), len(actual))


class IndexService:
    """Builds, loads, saves and edits the live index on behalf of the API and the CLI."""

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

    # ------------------------------------------------------------------ start-up
    async def load_or_build(self, progress: Progress | None = None) -> None:
        """Load the artifact when it matches the database and the encoder; otherwise log why and rebuild."""
        try:
            with session_scope(self.sessions) as session:
                # Only one process serves a database; a build still `building` here was cut off by a crash or kill.
                interrupted = IndexBuildRepository(session).fail_unfinished(
                    "interrupted: the process stopped during the build (the previous index stayed in use)"
                )
                if interrupted:
                    log.warning("%d index build(s) left unfinished by a stopped process marked failed", interrupted)
                topics = topics_with_exemplars(session)
                digest = state_digest(topics)
                version = IndexBuildRepository(session).latest_version()
                self.runtime.status.openai_keys = {t.name: tuple(t.openai_keys) for t in topics}
            reason = None
            try:
                meta = read_guard_metadata(self.index_dir)
                if meta.get("db_digest") != digest:
                    reason = "stale: the database changed since it was saved"
                else:
                    guard = await asyncio.to_thread(load_guard, self.index_dir, self.runtime.encoder)
                    if guard.config != self.config:
                        raise IndexArtifactError("stale: the scoring configuration changed since it was saved")
                    self.runtime.install(guard, max(version, int(meta.get("version", 0))))
                    log.info(
                        "index v%d loaded from %s (%d exemplars)", self.runtime.version, self.index_dir, len(guard)
                    )
                    return
            except IndexArtifactError as exc:
                reason = str(exc)
            log.warning("index artifact in %s not usable (%s); rebuilding from the database", self.index_dir, reason)
            await self.rebuild("startup", progress)
        except Exception as exc:
            self.runtime.status.state = "failed"
            self.runtime.status.error = f"index load failed: {exc}; fix the cause and restart"
            log.exception("index load failed")
            raise

    # ------------------------------------------------------------------ rebuilds
    async def rebuild(self, trigger: str = "rebuild", progress: Progress | None = None) -> IndexBuild:
        """Re-embed every exemplar into a new guard, swap it in and bump the version. Holds the edit lock."""
        async with self.runtime.edit_lock:
            return await self._rebuild_locked(trigger, progress)

    async def _rebuild_locked(self, trigger: str, progress: Progress | None) -> IndexBuild:
        runtime = self.runtime
        with session_scope(self.sessions) as session:
            topics = topics_with_exemplars(session)
            labels = [label_for(t, recalibrate=True) for t in topics]
            exemplars = [Exemplar(e.id, e.text, t.name, cast(Role, e.role)) for t in topics for e in t.exemplars]
            exemplars.sort(key=lambda e: e.id)
            version = max(IndexBuildRepository(session).latest_version(), runtime.version) + 1
            build = IndexBuildRepository(session).add(
                IndexBuild(version=version, trigger=trigger, model_id=runtime.encoder.model_id, status="building")
            )
            build_id = build.id
        if runtime.snapshot is None:
            runtime.status.state = "building"
        runtime.status.rebuilding = True
        try:
            background = await asyncio.to_thread(load_background, self.data_dir)
            guard = await asyncio.to_thread(
                Guard.build, runtime.encoder, labels, exemplars, self.config, background, progress
            )
        except Exception as exc:
            runtime.status.rebuilding = False
            with session_scope(self.sessions) as session:
                failed = session.get(IndexBuild, build_id)
                if failed is not None:
                    failed.status, failed.error, failed.finished_at = "failed", str(exc), utcnow()
            log.exception("index build v%d failed", version)
            if runtime.snapshot is None:
                runtime.status.state = "failed"
                runtime.status.error = f"index build failed: {exc}"
            raise IndexBuildError(f"index build failed: {exc}; the previous index keeps serving") from exc
        with session_scope(self.sessions) as session:
            topics = topics_with_exemplars(session)
            stored = guard.labels
            for topic in topics:
                label = stored.get(topic.name)
                if topic.kind == "custom" and topic.threshold_source == "calibrated" and label is not None:
                    topic.threshold = label.threshold
            session.flush()
            digest = state_digest(topics)
            done = session.get(IndexBuild, build_id)
            assert done is not None
            done.status, done.finished_at = "ready", utcnow()
            done.exemplar_count, done.checksum = len(guard), guard.checksum()
            runtime.status.openai_keys = {t.name: tuple(t.openai_keys) for t in topics}
            session.flush()
            session.expunge(done)
        runtime.install(guard, version, done.finished_at)
        runtime.status.rebuilding = False
        await self._save(guard, digest, version)
        log.info("index v%d built (%s): %d exemplars", version, trigger, len(guard))
        return done

    # ------------------------------------------------------------------ edits
    async def commit_edit(
        self,
        session: Session,
        trigger: str,
        change: Callable[[Guard], T],
        undo: Callable[[Guard], object],
        record: Callable[[T], None] | None = None,
    ) -> T:
        """Apply `change` to the live guard with a new version, let `record` write its result, commit; undo on failure.

        The caller holds `runtime.edit_lock` and has flushed its database changes in `session`.
        """
        runtime = self.runtime
        version = max(IndexBuildRepository(session).latest_version(), runtime.version) + 1
        result = await runtime.apply(change, version)
        try:
            if record is not None:
                record(result)
            guard = runtime.require().guard
            IndexBuildRepository(session).add(
                IndexBuild(
                    version=version,
                    trigger=trigger,
                    model_id=runtime.encoder.model_id,
                    status="ready",
                    exemplar_count=len(guard),
                    finished_at=utcnow(),
                )
            )
            session.commit()
        except BaseException:
            session.rollback()
            await runtime.apply(undo, version + 1)
            log.warning("edit %s rolled back: the database commit failed and the index change was undone", trigger)
            raise
        digest = state_digest(topics_with_exemplars(session))
        await self._save(runtime.require().guard, digest, version)
        return result

    # ------------------------------------------------------------------ artifact
    async def _save(self, guard: Guard, digest: str, version: int) -> None:
        meta: dict[str, Any] = {"db_digest": digest, "version": version, "model_id": guard.encoder.model_id}
        try:
            await asyncio.to_thread(save_guard, guard, self.index_dir, meta)
        except OSError:
            # The database is the source of truth: a stale artifact is detected and rebuilt at the next start.
            log.exception("could not save the index artifact to %s", self.index_dir)

    async def verify(self) -> VerifyReport:
        """Compare the live guard with the database."""
        with session_scope(self.sessions) as session:
            topics = topics_with_exemplars(session)
            return verify_guard(self.runtime.require().guard, topics)
