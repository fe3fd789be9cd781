"""The one way to change the live index: a unit of work that owns locking, catch-up, apply, commit and the version.

    async with edits.open(session, "topic_create") as edit:
        ...  # read and write the database in `session` (flushed, never committed)
        edit.apply(topic.name, change, undo, record)
    edit.version  # the index version that serves the change

Consistency rule (documented in docs/api.md): `open` takes this process's edit lock (`runtime.edit_lock`) and the
database's index lock (the `index_lock` row, in `session`'s transaction: one change commits at a time across every
process) and catches the live guard up with what other processes committed. When the block ends, the staged change
is applied to the live guard *and committed* inside one critical section of the guard's write lock, which
publishes the new version only once the commit succeeded. If the commit fails, `undo` runs in the same critical
section: no request ever saw the change, the version is not bumped, and the database and the index stay as they
were. Applying before the commit is what lets a new topic's calibrated threshold (`record`) be stored in the same
transaction. If the block raises, the transaction is rolled back and nothing is applied. The artifact is saved
after the commit, in the background (`service.usecases.artifact_saving`: the edits' delta from the home's full
artifact), and the database is the source of truth (a stale artifact is caught up at start-up).

Locks one edit takes: the edit lock, the index row and the guard's write lock once (twice when another process
committed since this one's last catch-up); one commit. The background save takes the runtime's read lock while it
captures the guard, then the artifact's file lock.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from index import Guard
from service.db.models import IndexBuild, utcnow
from service.db.repositories import IndexBuildRepository, IndexLockRepository
from service.serving.runtime import GuardRuntime
from service.usecases.artifact_saving import ArtifactSaver
from service.usecases.artifacts import IndexArtifacts
from service.usecases.following import IndexFollowing

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class _Staged:
    topic: str
    change: Callable[[Guard], Any]
    undo: Callable[[Guard], object]
    record: Callable[[Any], None] | None


class Edit:
    """One open edit: stage the change to the live guard with `apply`; read `version` once the block has ended."""

    def __init__(self, session: Session, purpose: str) -> None:
        self.session = session
        self.purpose = purpose
        self._staged: _Staged | None = None
        self._version: int | None = None

    def apply(
        self,
        topic: str,
        change: Callable[[Guard], T],
        undo: Callable[[Guard], object],
        record: Callable[[T], None] | None = None,
    ) -> None:
        """Stage `change` of `topic` (run on the live guard when the block ends, in one critical section with the
        commit; other processes re-read `topic` when they follow).

        `record(result of change)` writes what the guard computed (a calibrated threshold) before the commit;
        `undo` restores the guard if the commit fails. One change per edit.
        """
        if self._staged is not None:
            raise RuntimeError("an edit applies one change; open another edit for the next")
        self._staged = _Staged(topic, change, undo, record)

    @property
    def version(self) -> int:
        """The index version the change was published as (after the `async with` block)."""
        if self._version is None:
            raise RuntimeError("the edit has not committed: read its version after the `async with` block")
        return self._version


class IndexEdits:
    """Opens edits of the live index (topic changes) and holds the index for reads that must see it level."""

    def __init__(self, runtime: GuardRuntime, following: IndexFollowing, artifacts: IndexArtifacts) -> None:
        self.runtime = runtime
        self.following = following
        self.artifacts = artifacts
        self.saver = ArtifactSaver(runtime, artifacts)

    async def flush(self) -> None:
        """Wait for the artifact saves edits requested (a command that exits after its edit; tests)."""
        await self.saver.flush()

    @asynccontextmanager
    async def hold(self, session: Session, purpose: str) -> AsyncIterator[None]:
        """This process's edit lock and the database's index lock (in `session`'s transaction) for the block.

        The lock row is released by the session's commit or rollback: a block that does not commit is rolled back.
        """
        async with self.runtime.edit_lock:
            try:
                await asyncio.to_thread(IndexLockRepository(session).acquire, purpose)
                yield
            finally:
                if session.in_transaction():
                    session.rollback()

    @asynccontextmanager
    async def read(self, session: Session, purpose: str) -> AsyncIterator[None]:
        """Hold the index, caught up with the database, while the block reads it (changes nothing)."""
        async with self.hold(session, purpose):
            await self.following.catch_up(locked=True)
            yield

    @asynccontextmanager
    async def open(self, session: Session, purpose: str) -> AsyncIterator[Edit]:
        """An edit (`purpose`: what it does, e.g. "topic_create", recorded with the topic as the build's trigger);
        see the module docstring."""
        async with self.hold(session, purpose):
            await self.following.catch_up(locked=True)
            edit = Edit(session, purpose)
            yield edit
            if edit._staged is None:
                return  # nothing to apply: `hold` rolls back
            edit._version = await self._commit(edit, edit._staged)

    async def _commit(self, edit: Edit, staged: _Staged) -> int:
        runtime, session = self.runtime, edit.session
        trigger = f"{edit.purpose}:{staged.topic}"
        latest = await asyncio.to_thread(IndexBuildRepository(session).latest_version)
        version = max(latest, runtime.version) + 1

        def change_and_commit(guard: Guard) -> None:
            result = staged.change(guard)
            try:
                if staged.record is not None:
                    staged.record(result)
                build = IndexBuild(
                    version=version,
                    trigger=trigger,
                    topic=staged.topic,
                    model_id=runtime.encoder.model_id,
                    status="ready",
                    exemplar_count=len(guard),
                    finished_at=utcnow(),
                )
                IndexBuildRepository(session).add(build)
                session.commit()
            except BaseException:
                session.rollback()
                staged.undo(guard)
                log.warning("edit %s rolled back: the database commit failed and the index change was undone", trigger)
                raise

        await runtime.apply(change_and_commit, version)
        self.saver.request(version)
        return version
