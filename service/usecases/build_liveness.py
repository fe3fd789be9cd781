"""Whether a full build's process is alive: the heartbeat a building process writes with its progress, and the rule
that fails a `building` row whose process is gone, so that no poll shows a dead build as running forever.

A `building` row of `index_builds` is abandoned (marked `failed`) when
- its holder (`host:pid`) runs on this host and that process no longer exists, or is this very process but not one
  of the builds it runs (a restarted container may get its old pid back): at once, or
- its last heartbeat (before the first one: when it was asked for) is older than `STALE_AFTER_S`: a holder on another
  host that stopped writing (killed, or its host lost).
The rule runs when a process starts, before a rebuild is started and when a build is read by id. The building process
writes its progress at most every `PROGRESS_INTERVAL_S` and its heartbeat at least every `HEARTBEAT_INTERVAL_S`, from a
thread of its own (a busy event loop does not delay it; a write that waits for the database's lock only delays it).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from datetime import datetime

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.db.engine import session_scope
from service.db.models import IndexBuild, utcnow
from service.db.repositories import IndexBuildRepository

log = logging.getLogger(__name__)

PROGRESS_INTERVAL_S = 1.0
HEARTBEAT_INTERVAL_S = 5.0
# 12 heartbeats: a heartbeat waits for SQLite's write lock (busy timeout 30 s) while a long edit commits
STALE_AFTER_S = 60.0

_running: set[int] = set()  # ids of the builds this process runs (all its apps: tests run several in one process)
_running_lock = threading.Lock()


def holder_name() -> str:
    """This process as a build's holder: `host:pid`."""
    return f"{socket.gethostname()}:{os.getpid()}"[:200]


def gone_reason(build: IndexBuild, now: datetime) -> str | None:
    """Why the process building `build` (a `building` row) is gone, or None while it may be alive."""
    holder = build.holder or "its process"
    host, _, pid = holder.rpartition(":")
    if host == socket.gethostname() and pid.isdigit():
        with _running_lock:
            mine = build.id in _running
        if (int(pid) == os.getpid() and not mine) or (int(pid) != os.getpid() and not _pid_alive(int(pid))):
            return f"interrupted: the process building it ({holder}) stopped before it finished"
    age = (now - (build.heartbeat_at or build.started_at)).total_seconds()
    if age > STALE_AFTER_S:
        return f"abandoned: no heartbeat from {holder} for {age:.0f} s (more than {STALE_AFTER_S:.0f} s)"
    return None


def abandon_dead(session: Session) -> list[IndexBuild]:
    """Fail every `building` row whose process is gone (in `session`, not committed); returns them."""
    builds = IndexBuildRepository(session)
    now, failed = utcnow(), []
    for build in builds.building():
        reason = gone_reason(build, now)
        if reason is not None and builds.fail(build, f"{reason}; the previous index stayed in use"):
            failed.append(build)
    return failed


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, another user's
        return True
    return True


class BuildHeartbeat:
    """This process builds `build_id`: writes its progress and heartbeat to the database, from a thread, until
    stopped. Registered as running from construction (before its row commits, so that no other app of this process
    takes the row for an orphan); `start` begins the writes."""

    def __init__(self, sessions: sessionmaker[Session], build_id: int) -> None:
        self.sessions = sessions
        self.build_id = build_id
        self.progress: tuple[int | None, int | None] = (None, None)  # (embedded, total); None, None: queued
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"lightguard-build-{build_id}", daemon=True)
        with _running_lock:
            _running.add(build_id)

    def start(self) -> None:
        if not self._thread.is_alive() and not self._stop.is_set():
            self._thread.start()

    def update(self, embedded: int, total: int | None) -> None:
        """Called from the build thread after each batch; written within `PROGRESS_INTERVAL_S`."""
        self.progress = (embedded, total)

    def stop(self) -> None:
        """End the writes (idempotent). Never call it while holding the database's write lock: a write in flight
        waits for that lock, and this waits for the write."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=35)
        with _running_lock:
            _running.discard(self.build_id)

    def _run(self) -> None:
        written: tuple[int | None, int | None] | None = None
        last = 0.0
        while not self._stop.wait(PROGRESS_INTERVAL_S):
            progress, now = self.progress, time.monotonic()
            if progress == written and now - last < HEARTBEAT_INTERVAL_S:
                continue
            try:
                with session_scope(self.sessions) as session:
                    IndexBuildRepository(session).record_progress(self.build_id, *progress, utcnow())
            except SQLAlchemyError as exc:  # the next round tries again; staleness allows for missed beats
                log.warning("build %d: heartbeat not written (%s)", self.build_id, exc.__class__.__name__)
                continue
            written, last = progress, now
