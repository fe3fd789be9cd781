"""The decision log's writer: requests queue their rows; one thread inserts them in batches, one commit per batch.

A commit per request cost the classify path a synchronous database round trip (on SQLite an fsync) and, under
concurrent load, one commit per request where one per batch does. The request now only appends to a queue. What
that trades: a row is committed shortly after its response (within `linger_s`, 50 ms, or one batch later), so a
`kill -9` loses the rows still queued; a clean shutdown (`close`) writes them first. A failed write (disk full,
database gone) is logged and counted in `lightguard_decision_log_failures_total`; it never changes a verdict. When
the database cannot keep up, at most `max_pending` rows wait and newer ones are dropped and counted, so memory stays
bounded. The writer has a thread of its own: on asyncio's default executor, writes waiting for SQLite's write lock
once filled every thread while an edit held that lock, and the edit's own work never ran (a 30 s stall,
benchmarks/serving/soak.py).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.db.repositories import DecisionRepository
from service.metrics import Metrics

log = logging.getLogger(__name__)
DecisionRow = Mapping[str, Any]  # columns of service.db.models.Decision → values


class DecisionLog:
    """Batched, bounded, asynchronous writer of decision rows (one daemon thread)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        metrics: Metrics,
        max_pending: int = 100_000,
        max_rows_per_commit: int = 2_000,
        linger_s: float = 0.05,
    ) -> None:
        self._sessions = sessions
        self._metrics = metrics
        self._max_pending = max_pending
        self._max_rows = max_rows_per_commit
        self._linger_s = linger_s
        self._queue: queue.SimpleQueue[list[DecisionRow] | threading.Event | None] = queue.SimpleQueue()
        self._pending = 0
        self._pending_lock = threading.Lock()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="lightguard-decision-log", daemon=True)
        self._thread.start()

    def record(self, rows: Sequence[DecisionRow]) -> None:
        """Queue rows for writing; never blocks. Rows beyond `max_pending` waiting ones are dropped and counted."""
        if not rows:
            return
        with self._pending_lock:  # the put happens under the lock so that nothing is queued behind close()'s stop
            accepted = not self._closed and self._pending + len(rows) <= self._max_pending
            if accepted:
                self._pending += len(rows)
                self._queue.put(list(rows))
        if not accepted:
            self._metrics.decision_log_failures.inc(len(rows))
            log.warning("decision log queue full or closed; %d rows dropped (verdicts were returned)", len(rows))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every row queued before this call is written (or failed); False on timeout."""
        done = threading.Event()
        self._queue.put(done)
        return done.wait(timeout)

    def close(self, timeout: float = 10.0) -> None:
        """Write what is queued, then stop the thread."""
        with self._pending_lock:
            if self._closed:
                return
            self._closed = True
            self._queue.put(None)
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.warning("decision log: %d rows still unwritten after %.0f s at shutdown", self._pending, timeout)

    @property
    def pending(self) -> int:
        return self._pending

    def _run(self) -> None:
        stop = False
        while not stop:
            rows: list[DecisionRow] = []
            waiters: list[threading.Event] = []
            item = self._queue.get()
            deadline = time.monotonic() + self._linger_s
            # Take what else arrives within the linger: a sequential client's rows then share a commit too. A flush
            # or close ends the linger at once.
            while True:
                if item is None:
                    stop = True
                elif isinstance(item, threading.Event):
                    waiters.append(item)
                else:
                    rows.extend(item)
                if stop or waiters or len(rows) >= self._max_rows:
                    break
                try:
                    item = self._queue.get(timeout=max(0.0, deadline - time.monotonic()))
                except queue.Empty:
                    break
            if rows:
                self._write(rows)
            for waiter in waiters:
                waiter.set()

    def _write(self, rows: list[DecisionRow]) -> None:
        try:
            with self._sessions() as session:
                DecisionRepository(session).add_many(rows)
                session.commit()
        except SQLAlchemyError as exc:
            self._metrics.decision_log_failures.inc(len(rows))
            log.warning(
                "decision log write of %d rows failed (%s); verdicts were returned", len(rows), exc.__class__.__name__
            )
        except Exception:  # a bug must not kill the writer thread and silently stop the log
            self._metrics.decision_log_failures.inc(len(rows))
            log.exception("decision log write of %d rows failed unexpectedly", len(rows))
        finally:
            with self._pending_lock:
                self._pending -= len(rows)
