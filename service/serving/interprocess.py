"""File locks shared by the worker processes of one LIGHTGUARD_HOME (`lightguard serve --workers N`).

`flock` locks belong to an open file description, so two holders in one process exclude each other too, and the
kernel drops a lock when its process dies (even by SIGKILL): a crash never leaves one held. They coordinate work
on the shared folder (migrating and seeding at start-up, builds, the index artifact); the database's own lock row
(`IndexLockRepository`) orders the index changes themselves.
"""

from __future__ import annotations

import asyncio
import fcntl
import os
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path


class FileLock:
    """An exclusive lock on `path` (created on first use)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _open(self) -> int:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    @contextmanager
    def hold(self) -> Iterator[None]:
        """Block until the lock is ours (for worker threads and start-up code)."""
        fd = self._open()
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing the descriptor releases the lock

    @asynccontextmanager
    async def hold_async(self, poll_s: float = 0.05) -> AsyncIterator[None]:
        """Wait for the lock without blocking the event loop; cancelling the wait leaves nothing held."""
        fd = self._open()
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(poll_s)  # another process builds; builds take seconds, so polling is cheap
            yield
        finally:
            os.close(fd)
