"""Saving the home's index artifact after edits, in the background: an edit's response does not wait for it.

The artifact is a cache of the database (which is the source of truth): a process that starts from an artifact some
versions old catches it up from the change log (`service.usecases.following`), so saving it after the response is
safe. Saving costs time in the size of the whole index (the store's bytes, a manifest of every exemplar, their
digest, the disk: ~1 s for the 30k seed exemplars on a busy 2-core machine) and nothing in the size of the edit,
which is why it must not sit in an edit's path.
"""

from __future__ import annotations

import asyncio
import functools
import logging

from index import GuardImage, capture_guard
from service.db.repositories import topic_order
from service.serving.runtime import GuardRuntime
from service.usecases.artifacts import IndexArtifacts
from service.usecases.catchup import image_digest

log = logging.getLogger(__name__)


class ArtifactSaver:
    """Saves the live guard's artifact after edits: one save at a time, coalesced (edits that commit while a save
    runs are covered by one more save of the newest version).

    A save holds the runtime's read lock only while it captures the guard (`index.capture_guard`: the store's bytes
    and shallow copies); the digest, the manifest and the disk write run with no lock. Failures are logged, not
    raised: a stale artifact is caught up at the next start.
    """

    def __init__(self, runtime: GuardRuntime, artifacts: IndexArtifacts) -> None:
        self.runtime = runtime
        self.artifacts = artifacts
        self._pending = False
        self._task: asyncio.Task[None] | None = None
        self._order: tuple[int, dict[str, int]] = (-1, {})

    def request(self, version: int, order: dict[str, int]) -> None:
        """Save the live guard soon (on the event loop, after the edit that made `version` committed; `order`: the
        topic order the edit read under the index lock); returns at once."""
        self._pending = True
        self._order = (version, order)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="lightguard-artifact-save")

    async def flush(self) -> None:
        """Wait until every requested save has finished (a command that exits after its edit; tests)."""
        while self._task is not None and not self._task.done():
            await asyncio.shield(self._task)

    async def _run(self) -> None:
        while self._pending:
            self._pending = False
            try:
                await self._save()
            except Exception:
                log.exception("could not save the index artifact to %s", self.artifacts.index_dir)

    async def _save(self) -> None:
        image, version = await asyncio.to_thread(self._capture)
        saved_version, order = self._order
        if version != saved_version:  # another change came after the last edit (a catch-up, a rebuild)
            order = await asyncio.to_thread(self._topic_order)
        digest = await asyncio.to_thread(image_digest, image, order)
        await asyncio.to_thread(self.artifacts.write_image, image, digest, version)

    def _capture(self) -> tuple[GuardImage, int]:
        """The live guard captured under the runtime's read lock, with the version it is at: every change to the
        live guard (an edit with its commit, a catch-up) runs under the write lock, so the image is one committed
        version, and no edit waits for more than the capture itself."""
        runtime = self.runtime
        live = runtime.require()
        while True:
            seen = runtime.read_live(live.guard, None, functools.partial(capture_guard, live.guard))
            if isinstance(seen, tuple):
                return seen
            live = seen  # a rebuild replaced the guard meanwhile: capture the new one

    def _topic_order(self) -> dict[str, int]:
        """Topic names -> database ids: the order the state digest walks (`catchup.guard_digest`)."""
        with self.artifacts.sessions() as session:
            return topic_order(session)
