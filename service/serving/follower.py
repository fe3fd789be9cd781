"""Keeps this worker's live index level with the database when other processes change it (`--workers N`, CLI).

Each worker process holds its own guard in memory. The database is the source of truth and every committed change
is a new `index_builds` version, so a worker polls the newest committed version (one indexed `max()` query every
LIGHTGUARD_FOLLOW_INTERVAL_S) and, when it is behind, catches up under its edit lock: the topics changed since its
version are re-read and diffed into its guard (only new exemplars are embedded), and after another process's full
rebuild the saved artifact is loaded. Edits catch up before they apply their own change, so a worker never builds
on a state it has not seen; between polls a worker can answer from a version up to one interval (plus the catch-up
itself) older than the newest, and every answer names the version it used.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from service.usecases.indexing import IndexService

log = logging.getLogger(__name__)


class IndexFollower:
    """Polls the database for index versions committed by other processes and catches the live guard up."""

    def __init__(self, indexing: IndexService, interval_s: float) -> None:
        self.indexing = indexing
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
        runtime = self.indexing.runtime
        # Not loaded yet, or this process is editing or rebuilding (it catches up itself under the same lock).
        if runtime.snapshot is None or runtime.edit_lock.locked():
            return None
        try:
            latest = await asyncio.to_thread(self.indexing.latest_ready_version)
            if latest <= runtime.version:
                self._failures = 0
                return None
            async with runtime.edit_lock:
                reached = await self.indexing.catch_up()
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
