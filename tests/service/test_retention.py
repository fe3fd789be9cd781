"""Decision-log retention: by age, by row count, in batches, stoppable, run by the app and by the CLI."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from index import HashingEncoder
from service.app import create_app
from service.db.engine import create_db_engine, make_sessionmaker, upgrade_database
from service.db.repositories import DecisionRepository
from service.settings import Settings
from service.usecases.retention import RetentionPolicy, prune_decisions
from tests.service.support import make_settings, wait_ready

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


@pytest.fixture
def sessions(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    url = f"sqlite:///{tmp_path / 'retention.db'}"
    engine = create_db_engine(url)
    upgrade_database(url, engine)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def fill(sessions: sessionmaker[Session], hours_ago: list[float]) -> None:
    rows: list[dict[str, Any]] = [
        {
            "created_at": NOW - timedelta(hours=h),
            "endpoint": "classify",
            "text_digest": "0" * 64,
            "flagged": False,
            "score": 0.1,
            "index_version": 1,
        }
        for h in hours_ago
    ]
    with sessions() as session:
        DecisionRepository(session).add_many(rows)
        session.commit()


def remaining(sessions: sessionmaker[Session]) -> list[int]:
    with sessions() as session:
        return sorted(d.id for d in DecisionRepository(session).newest(10_000))


def test_age_limit_deletes_older_rows_in_batches(sessions: sessionmaker[Session]) -> None:
    fill(sessions, [100, 90, 80, 70, 60, 50, 40, 30, 5, 1])  # ids 1..10, oldest first
    policy = RetentionPolicy(max_age=timedelta(days=1), batch_rows=3, pause_s=0)
    report = prune_decisions(sessions, policy, now=NOW)
    assert report.deleted == 8 and report.batches == 3  # 3 + 3 + 2
    assert remaining(sessions) == [9, 10]
    assert prune_decisions(sessions, policy, now=NOW).deleted == 0


def test_row_limit_keeps_the_newest(sessions: sessionmaker[Session]) -> None:
    fill(sessions, [float(h) for h in range(10, 0, -1)])
    report = prune_decisions(sessions, RetentionPolicy(max_rows=4, batch_rows=4, pause_s=0), now=NOW)
    assert report.deleted == 6 and report.batches == 2
    assert remaining(sessions) == [7, 8, 9, 10]
    assert prune_decisions(sessions, RetentionPolicy(max_rows=4), now=NOW).deleted == 0


def test_both_limits_apply(sessions: sessionmaker[Session]) -> None:
    fill(sessions, [50, 40, 3, 2, 1])
    policy = RetentionPolicy(max_age=timedelta(days=1), max_rows=2, pause_s=0)
    assert prune_decisions(sessions, policy, now=NOW).deleted == 3
    assert remaining(sessions) == [4, 5]


def test_a_stop_request_ends_the_pass_between_batches(sessions: sessionmaker[Session]) -> None:
    fill(sessions, [100.0 + h for h in range(10)])
    stop = threading.Event()
    stop.set()
    report = prune_decisions(sessions, RetentionPolicy(max_age=timedelta(hours=1), batch_rows=2), now=NOW, stop=stop)
    assert report.deleted == 0 and len(remaining(sessions)) == 10


def test_policy_from_settings(tmp_path: Path) -> None:
    assert not RetentionPolicy.from_settings(make_settings(tmp_path)).active
    policy = RetentionPolicy.from_settings(
        make_settings(tmp_path, decision_retention_days=0.5, decision_retention_rows=9, decision_retention_batch=7)
    )
    assert policy.max_age == timedelta(hours=12) and policy.max_rows == 9 and policy.batch_rows == 7
    with pytest.raises(ValueError, match="decision_retention_days"):
        make_settings(tmp_path, decision_retention_days=0)


def test_the_running_service_enforces_retention_in_the_background(tmp_path: Path) -> None:
    settings = make_settings(tmp_path, decision_retention_rows=3, decision_retention_interval_s=0.05)
    with TestClient(create_app(settings, HashingEncoder())) as client:
        wait_ready(client)
        texts = [f"prompt number {n}" for n in range(8)]
        assert client.post("/v1/classify", json={"texts": texts}).is_success
        assert client.app.state.ctx.decision_log.flush()  # type: ignore[attr-defined]
        deadline = time.monotonic() + 10
        while len(client.get("/v1/decisions").json()["decisions"]) > 3:
            assert time.monotonic() < deadline, "retention did not run within 10 s"
            time.sleep(0.02)  # polling interval under a deadline
        # the three newest survive, and classify went on answering
        assert client.post("/v1/classify", json={"text": "still answering"}).is_success


def test_cli_prune_applies_the_settings_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from service.cli.main import app as cli

    settings = Settings(home=tmp_path)
    url = settings.resolved_database_url
    engine = create_db_engine(url)
    upgrade_database(url, engine)
    sessions = make_sessionmaker(engine)
    fill(sessions, [3, 2, 1])
    engine.dispose()
    monkeypatch.setenv("LIGHTGUARD_HOME", str(tmp_path))
    assert CliRunner().invoke(cli, ["decisions", "prune"]).exit_code == 1  # nothing set: says so
    monkeypatch.setenv("LIGHTGUARD_DECISION_RETENTION_ROWS", "1")
    result = CliRunner().invoke(cli, ["decisions", "prune"])
    assert result.exit_code == 0, result.output
    assert "2 decisions deleted" in result.output
