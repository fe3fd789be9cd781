"""Saving the home's index artifact after edits, in the background: an edit's response does not wait for it.

The artifact is a cache of the database (which is the source of truth): a process that starts from an artifact some
versions old catches it up from the change log (`service.usecases.following`), so saving it after the response is
safe. An edit saves only its delta from the full artifact in the home (`index.artifact_delta`: every label, the
exemplars removed and added since, their vectors; milliseconds and kilobytes), not the whole index (the store's
serialisation, a manifest of every exemplar, their checksums: ~0.8 s of CPU, ~60 MB written and as much memory for
the 30k seed exemplars), which only full builds write. A full artifact is written instead when the live guard has
no delta from the home's (a build or a refit changed its head, another process replaced the folder) or the delta
has grown past `compact_at` exemplars.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import TypeVar

from index import Guard, GuardDelta, capture_delta, capture_guard
from service.serving.runtime import GuardRuntime
from service.usecases.artifacts import IndexArtifacts

log = logging.getLogger(__name__)
T = TypeVar("T")

COMPACT_MIN = 2_000
"""A delta of up to this many changed exemplars (or a tenth of the full artifact's, if more) is saved as it is."""


class ArtifactSaver:
    """Saves the live guard's artifact after edits: one save at a time, coalesced (edits that commit while a save
    runs are covered by one more save of the newest version).

    A save holds the runtime's read lock (no edit applies meanwhile) while it captures the guard: a delta (the
    exemplars that differ from the base, and their vectors) or, for a full save, the store's copy; the disk write
    runs with no lock. Failures are logged, not raised: a stale artifact is caught up at the next start.
    """

    def __init__(self, runtime: GuardRuntime, artifacts: IndexArtifacts) -> None:
        self.runtime = runtime
        self.artifacts = artifacts
        self._pending = False
        self._task: asyncio.Task[None] | None = None
        # what the saves did (tests, the log): deltas and full artifacts written, deltas a newer save made moot,
        # deltas the disk refused
        self.saves = {"delta": 0, "full": 0, "superseded": 0, "failed": 0}

    def request(self, version: int) -> None:
        """Save the live guard soon (on the event loop, after the edit that made `version` committed); returns at
        once. The save writes whatever version the live guard is at by then."""
        self._pending = True
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
        delta, version = await asyncio.to_thread(self._capture, self._delta)
        if delta is not None:
            done = await asyncio.to_thread(self.artifacts.write_delta, delta, version)
            if done != "rebase":
                self.saves["delta" if done == "saved" else done] += 1
                return
        image, version = await asyncio.to_thread(self._capture, capture_guard)
        # no database digest: the loader computes it from the guard when it needs one
        await asyncio.to_thread(self.artifacts.write_image, image, None, version)
        self.saves["full"] += 1

    def _delta(self, guard: Guard) -> GuardDelta | None:
        base = self.artifacts.base
        if base is None:
            return None
        delta = capture_delta(guard, base)
        if delta is None or delta.size > max(COMPACT_MIN, len(base.exemplars) // 10):
            return None
        return delta

    def _capture(self, read: Callable[[Guard], T]) -> tuple[T, int]:
        """`read(live guard)` under the runtime's read lock, with the version it is at: every change to the live
        guard (an edit with its commit, a catch-up) runs under the write lock, so what is read is one committed
        version, and no edit waits for more than the capture itself."""
        runtime = self.runtime
        live = runtime.require()
        while True:
            seen = runtime.read_live(live.guard, None, functools.partial(read, live.guard))
            if isinstance(seen, tuple):
                return seen
            live = seen  # a rebuild replaced the guard meanwhile: capture the new one
