"""The live guard: an immutable (guard, version) snapshot behind a read/write lock, and the bounded executors.

Classification holds the read lock for its whole call, so the version it reports is the version of the state it
used; edits take the write lock only for the short in-memory change (encoding happens before) and bump the version
in the same critical section. `edit_lock` serialises every change to topics and every rebuild.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, TypeVar

import numpy as np
from numpy.typing import NDArray

from index import Encoder, Guard, Verdict
from service.errors import IndexNotReadyError
from service.models import utcnow
from service.settings import Settings

T = TypeVar("T")
Status = Literal["loading", "building", "ready", "failed"]


class ReadWriteLock:
    """Many readers or one writer; a waiting writer blocks new readers (so edits cannot starve)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._readers = 0
        self._writer = False
        self._waiting_writers = 0

    @contextmanager
    def read(self) -> Iterator[None]:
        with self._cond:
            while self._writer or self._waiting_writers:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def write(self) -> Iterator[None]:
        with self._cond:
            self._waiting_writers += 1
            while self._writer or self._readers:
                self._cond.wait()
            self._waiting_writers -= 1
            self._writer = True
        try:
            yield
        finally:
            with self._cond:
                self._writer = False
                self._cond.notify_all()


@dataclass(frozen=True, slots=True)
class GuardSnapshot:
    guard: Guard
    version: int
    built_at: datetime
    model_id: str


@dataclass(slots=True)
class RuntimeStatus:
    state: Status = "loading"
    error: str | None = None
    rebuilding: bool = False
    openai_keys: dict[str, tuple[str, ...]] = field(default_factory=dict)


class GuardRuntime:
    """Holds the serving guard; swaps it atomically; runs CPU work off the event loop."""

    def __init__(self, encoder: Encoder, workers: int = 2) -> None:
        self.encoder = encoder
        self.status = RuntimeStatus()
        self.edit_lock = asyncio.Lock()
        self._rw = ReadWriteLock()
        self._snapshot: GuardSnapshot | None = None
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="lightguard-classify")
        self._ready = threading.Event()

    @property
    def snapshot(self) -> GuardSnapshot | None:
        return self._snapshot

    @property
    def version(self) -> int:
        snap = self._snapshot
        return snap.version if snap is not None else 0

    def require(self) -> GuardSnapshot:
        snap = self._snapshot
        if snap is None:
            detail = self.status.error or "the index is still loading; poll GET /readyz until it returns 200"
            raise IndexNotReadyError(detail)
        return snap

    async def classify(self, texts: Sequence[str]) -> tuple[list[Verdict], int]:
        """Verdicts and the index version they were computed on (one consistent state)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._classify_sync, list(texts))

    def _classify_sync(self, texts: list[str]) -> tuple[list[Verdict], int]:
        with self._rw.read():
            snap = self.require()
            return snap.guard.classify(texts), snap.version

    async def embed(self, texts: Sequence[str]) -> NDArray[np.float32]:
        guard = self.require().guard
        return await asyncio.to_thread(guard.embed, list(texts))

    async def apply(self, change: Callable[[Guard], T], version: int) -> T:
        """Run `change` on the live guard under the write lock and publish `version` with it.

        If `change` raises, the version is not bumped (the library's edits are all-or-nothing).
        """
        return await asyncio.to_thread(self._apply_sync, change, version)

    def _apply_sync(self, change: Callable[[Guard], T], version: int) -> T:
        with self._rw.write():
            snap = self.require()
            result = change(snap.guard)
            self._snapshot = GuardSnapshot(snap.guard, version, snap.built_at, snap.model_id)
            return result

    def install(self, guard: Guard, version: int, built_at: datetime | None = None) -> None:
        """Swap in a new guard (after a build or a load)."""
        with self._rw.write():
            self._snapshot = GuardSnapshot(guard, version, built_at or utcnow(), guard.encoder.model_id)
            self.status.state = "ready"
            self.status.error = None
        self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        return self._ready.wait(timeout)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def open_guard(settings: Settings, progress: Callable[[int, int], None] | None = None) -> Guard:
    """The guard the service serves, loaded or built from the database (for the CLI's classify/evaluate)."""
    from service.context import open_guard as open_context_guard  # the context imports this module

    return open_context_guard(settings, progress)
