"""The saved index artifact of one LIGHTGUARD_HOME: read, written and replaced by one process at a time."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from index import Encoder, Guard, IndexArtifactError, load_guard, read_guard_metadata, save_guard
from service.db.repositories import IndexBuildRepository
from service.serving.interprocess import FileLock
from service.usecases.catchup import guard_digest

log = logging.getLogger(__name__)


class IndexArtifacts:
    """The artifact folder `index_dir`, behind a file lock shared by every process of the home."""

    def __init__(self, index_dir: Path, sessions: sessionmaker[Session]) -> None:
        self.index_dir = index_dir
        self.sessions = sessions
        self.lock = FileLock(index_dir.parent / f".{index_dir.name}.artifact.lock")

    def read(self, encoder: Encoder) -> tuple[dict[str, Any], Guard]:
        """The saved metadata and guard. Raises IndexArtifactError when there is none or it cannot be read."""
        with self.lock.hold():
            return read_guard_metadata(self.index_dir), load_guard(self.index_dir, encoder)

    def write(self, guard: Guard, digest: str, version: int) -> None:
        """Save `guard` as committed version `version`, unless a newer committed version is saved already."""
        meta: dict[str, Any] = {"db_digest": digest, "version": version, "model_id": guard.encoder.model_id}
        with self.lock.hold():
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

    async def save(self, guard: Guard, order: dict[str, int], version: int) -> None:
        """Save the guard as version `version` (the caller holds `runtime.edit_lock`, so it cannot change); `order`
        maps topic names to database ids (the order the state digest walks). A failure is logged, not raised."""
        try:
            digest = await asyncio.to_thread(guard_digest, guard, order)
            await asyncio.to_thread(self.write, guard, digest, version)
        except Exception:
            # The database is the source of truth: a stale artifact is caught up or rebuilt at the next start.
            log.exception("could not save the index artifact to %s", self.index_dir)

    def _latest_version(self) -> int:
        with self.sessions() as session:
            return IndexBuildRepository(session).latest_version()
