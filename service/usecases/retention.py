"""Decision-log retention: delete rows past an age or beyond a row count, in small batches on a thread of its own.

The log gains a row per classified text (about 4 GB a day of SQLite at 500 prompts/s), so a deployment sets
LIGHTGUARD_DECISION_RETENTION_DAYS and/or LIGHTGUARD_DECISION_RETENTION_ROWS. Deleting millions of rows in one
statement would hold SQLite's write lock (or a large PostgreSQL transaction) for seconds, and the decision-log
writer and topic edits would wait behind it; so each pass deletes `batch_rows` rows per transaction and pauses
between batches. Classify itself never touches the database (its rows are queued for the writer thread), so a pass
never blocks a verdict. Like the writer, the pass runs on a thread of its own: on asyncio's default executor its
lock waits could fill the threads that edits need.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from service.db.models import utcnow
from service.db.repositories import DecisionRepository
from service.settings import Settings

log = logging.getLogger(__name__)
_DeleteBatch = Callable[[DecisionRepository], int]


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """`max_age` and/or `max_rows` (None: no limit of that kind); how a pass deletes and how often it runs."""

    max_age: timedelta | None = None
    max_rows: int | None = None
    batch_rows: int = 2_000
    pause_s: float = 0.02
    interval_s: float = 60.0

    @property
    def active(self) -> bool:
        return self.max_age is not None or self.max_rows is not None

    @classmethod
    def from_settings(cls, settings: Settings) -> RetentionPolicy:
        days = settings.decision_retention_days
        return cls(
            max_age=None if days is None else timedelta(days=days),
            max_rows=settings.decision_retention_rows,
            batch_rows=settings.decision_retention_batch,
            interval_s=settings.decision_retention_interval_s,
        )


@dataclass(slots=True)
class RetentionReport:
    """What one pass did: rows deleted, transactions, total seconds and the longest batch (the lock hold)."""

    deleted: int = 0
    batches: int = 0
    seconds: float = 0.0
    longest_batch_s: float = 0.0


def prune_decisions(
    sessions: sessionmaker[Session],
    policy: RetentionPolicy,
    now: datetime | None = None,
    stop: threading.Event | None = None,
) -> RetentionReport:
    """One retention pass: age first, then the row count; returns early when `stop` is set."""
    report = RetentionReport()
    started = time.perf_counter()
    stop = stop or threading.Event()
    if policy.max_age is not None:
        cutoff = (now or utcnow()) - policy.max_age
        _in_batches(sessions, policy, report, stop, lambda repo: repo.delete_older_than(cutoff, policy.batch_rows))
    if policy.max_rows is not None and not stop.is_set():
        with sessions() as session:
            bound = DecisionRepository(session).id_beyond_newest(policy.max_rows)
        if bound is not None:
            _in_batches(sessions, policy, report, stop, lambda repo: repo.delete_up_to(bound, policy.batch_rows))
    report.seconds = time.perf_counter() - started
    return report


def _in_batches(
    sessions: sessionmaker[Session],
    policy: RetentionPolicy,
    report: RetentionReport,
    stop: threading.Event,
    delete_batch: _DeleteBatch,
) -> None:
    while not stop.is_set():
        began = time.perf_counter()
        with sessions() as session:
            deleted = delete_batch(DecisionRepository(session))
            session.commit()
        report.longest_batch_s = max(report.longest_batch_s, time.perf_counter() - began)
        report.deleted += deleted
        report.batches += 1
        if deleted < policy.batch_rows:
            return
        stop.wait(policy.pause_s)  # let the decision-log writer and edits take the write lock between batches


class DecisionRetention:
    """Runs `prune_decisions` every `policy.interval_s` on a daemon thread until `stop()`."""

    def __init__(self, sessions: sessionmaker[Session], policy: RetentionPolicy) -> None:
        self._sessions = sessions
        self.policy = policy
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="lightguard-retention", daemon=True)
        self.last: RetentionReport | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.last = prune_decisions(self._sessions, self.policy, stop=self._stop)
                if self.last.deleted:
                    log.info(
                        "decision retention: %d rows deleted in %d batches, %.2f s (longest batch %.1f ms)",
                        self.last.deleted,
                        self.last.batches,
                        self.last.seconds,
                        1000 * self.last.longest_batch_s,
                    )
            except SQLAlchemyError as exc:  # the database is down or busy: try again next interval
                log.warning(
                    "decision retention pass failed (%s); retrying in %.0f s",
                    exc.__class__.__name__,
                    self.policy.interval_s,
                )
            except Exception:  # a bug must not end retention silently
                log.exception("decision retention pass failed unexpectedly")
            self._stop.wait(self.policy.interval_s)
