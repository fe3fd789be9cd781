"""The batched decision-log writer on a real SQLite file: batching, ordering, bounds, failures, shutdown."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from service.db.decision_log import DecisionLog
from service.db.engine import create_db_engine, make_sessionmaker, upgrade_database
from service.db.repositories import DecisionRepository
from service.metrics import Metrics


@pytest.fixture
def db(tmp_path: Path) -> Iterator[tuple[sessionmaker[Session], Path]]:
    path = tmp_path / "log.db"
    url = f"sqlite:///{path}"
    engine = create_db_engine(url)
    upgrade_database(url, engine)
    yield make_sessionmaker(engine), path
    engine.dispose()


def rows(n: int, tag: str = "t") -> list[dict[str, object]]:
    return [
        {"endpoint": "classify", "text_digest": f"{tag}{i}", "flagged": False, "score": 0.1, "index_version": 1}
        for i in range(n)
    ]


def failures(metrics: Metrics) -> float:
    value = metrics.registry.get_sample_value("lightguard_decision_log_failures_total")
    return float(value or 0.0)


def digests(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return [d.text_digest for d in reversed(DecisionRepository(session).recent(10_000))]


def test_rows_are_written_in_order_and_flush_waits_for_them(db: tuple[sessionmaker[Session], Path]) -> None:
    sessions, _ = db
    log = DecisionLog(sessions, Metrics())
    for n in range(20):
        log.record(rows(3, tag=f"r{n}-"))
    assert log.flush()
    assert digests(sessions) == [f"r{n}-{i}" for n in range(20) for i in range(3)]
    assert log.pending == 0
    log.close()


def test_queued_requests_share_one_commit(db: tuple[sessionmaker[Session], Path]) -> None:
    """Rows queued while a write is in progress go out together: one commit for many requests."""
    sessions, _ = db
    commits: list[int] = []
    gate = threading.Event()
    engine = sessions.kw["bind"]

    @event.listens_for(engine, "commit")
    def on_commit(_conn: object) -> None:
        commits.append(1)
        gate.wait(5)  # hold the first write so the next 50 requests queue behind it

    log = DecisionLog(sessions, Metrics())
    log.record(rows(1, "first"))
    for n in range(50):
        log.record(rows(1, f"q{n}-"))
    gate.set()
    assert log.flush()
    assert len(digests(sessions)) == 51
    assert len(commits) <= 3  # the held one, then the 50 queued (at most split once by timing), not 51
    log.close()


def test_a_failed_write_is_counted_and_the_writer_keeps_going(db: tuple[sessionmaker[Session], Path]) -> None:
    sessions, path = db
    metrics = Metrics()
    log = DecisionLog(sessions, metrics)
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TRIGGER no_room BEFORE INSERT ON decisions BEGIN SELECT RAISE(ABORT, 'disk full'); END")
    log.record(rows(4, "lost"))
    assert log.flush()
    assert failures(metrics) == 4.0
    with sqlite3.connect(path) as conn:
        conn.execute("DROP TRIGGER no_room")
    log.record(rows(2, "kept"))
    assert log.flush()
    assert digests(sessions) == ["kept0", "kept1"]
    log.close()


def test_the_queue_is_bounded_and_drops_are_counted(db: tuple[sessionmaker[Session], Path]) -> None:
    sessions, _ = db
    metrics = Metrics()
    gate = threading.Event()
    engine = sessions.kw["bind"]
    event.listen(engine, "commit", lambda _conn: gate.wait(5))
    log = DecisionLog(sessions, metrics, max_pending=10)
    log.record(rows(6, "a"))  # being written (held at commit) or queued: 6 pending
    log.record(rows(4, "b"))  # 10 pending: still accepted
    log.record(rows(1, "c"))  # 11 > 10: dropped
    assert failures(metrics) == 1.0
    gate.set()
    assert log.flush()
    assert sorted(digests(sessions)) == sorted([f"a{i}" for i in range(6)] + [f"b{i}" for i in range(4)])
    log.close()


def test_close_writes_what_is_queued_then_refuses_more(db: tuple[sessionmaker[Session], Path]) -> None:
    sessions, _ = db
    metrics = Metrics()
    log = DecisionLog(sessions, metrics)
    log.record(rows(30, "x"))
    log.close()
    assert len(digests(sessions)) == 30
    log.record(rows(2, "late"))
    assert failures(metrics) == 2.0
    assert len(digests(sessions)) == 30
