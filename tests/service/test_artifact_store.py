"""Index artifacts in the database: chunked round trips, checksum failures skipped, pruning; and replicas with their
own (empty) homes on one database loading a full build's artifact from it instead of re-embedding."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from index import HashingEncoder
from service.app import create_app
from service.db.artifacts import CorruptArtifactError, IndexArtifactRepository
from service.db.engine import create_db_engine, make_sessionmaker, session_scope, upgrade_database
from service.db.models import IndexArtifactChunk
from service.settings import Settings
from service.usecases.following import IndexFollower
from service.usecases.seed import load_background
from tests.conftest import CountingEncoder
from tests.service.support import (
    COOKING,
    FIXTURES,
    create_cooking,
    drop_stored_artifacts,
    make_settings,
    rebuild_and_wait,
    wait_ready,
)

FILES = {"guard.json": b'{"a": 1}', "vectors.faiss": bytes(range(256)) * 3, "empty.bin": b""}


@pytest.fixture
def sessions(database_url: str) -> Iterator[sessionmaker[Session]]:
    upgrade_database(database_url)
    engine = create_db_engine(database_url)
    try:
        yield make_sessionmaker(engine)
    finally:
        engine.dispose()


def store(sessions: sessionmaker[Session], version: int, files: dict[str, bytes] = FILES, chunk: int = 100) -> int:
    with session_scope(sessions) as session:
        return IndexArtifactRepository(session, chunk_bytes=chunk).add(version, "hashing", files).id


def test_files_round_trip_through_chunks(sessions: sessionmaker[Session]) -> None:
    artifact = store(sessions, 1, chunk=100)
    with sessions() as session:
        chunks = session.query(IndexArtifactChunk).filter_by(artifact_id=artifact, name="vectors.faiss").count()
        assert chunks == 8  # 768 bytes in chunks of 100
        assert IndexArtifactRepository(session).files(artifact) == FILES


@pytest.mark.parametrize("damage", ["flip", "drop"])
def test_a_corrupt_or_partial_artifact_fails_its_checksum(sessions: sessionmaker[Session], damage: str) -> None:
    artifact = store(sessions, 1)
    with session_scope(sessions) as session:
        where = (IndexArtifactChunk.artifact_id == artifact) & (IndexArtifactChunk.name == "vectors.faiss")
        if damage == "flip":
            session.execute(update(IndexArtifactChunk).where(where & (IndexArtifactChunk.seq == 3)).values(data=b"x"))
        else:
            session.query(IndexArtifactChunk).filter(where & (IndexArtifactChunk.seq == 7)).delete()
    with sessions() as session, pytest.raises(CorruptArtifactError):
        IndexArtifactRepository(session).files(artifact)


def test_pruning_keeps_the_newest(sessions: sessionmaker[Session]) -> None:
    for version in (3, 5, 9, 12):
        store(sessions, version)
    with session_scope(sessions) as session:
        assert IndexArtifactRepository(session).prune(2) == 2
    with sessions() as session:
        repo = IndexArtifactRepository(session)
        assert [a.version for a in repo.newest()] == [12, 9]
        assert repo.newest_version() == 12
        assert session.query(IndexArtifactChunk).count() == 2 * (1 + 8 + 1)  # the pruned ones' chunks went too


def replica(tmp_path: Path, name: str, database_url: str, **overrides: object) -> Settings:
    """A replica: a home of its own, the shared database, following driven by the test."""
    return make_settings(tmp_path / name, database_url=database_url, follow_interval_s=0, **overrides)


def loaded_from(client: TestClient, source: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(f'lightguard_index_loaded_from_total{{source="{source}"}}'):
            return float(line.split()[-1])
    return 0.0


def test_an_empty_home_loads_the_database_artifact_and_catches_up(tmp_path: Path, database_url: str) -> None:
    with TestClient(create_app(replica(tmp_path, "a", database_url), HashingEncoder())) as a:
        wait_ready(a)
        assert loaded_from(a, "build") == 1
        create_cooking(a)  # an edit after the stored full build: caught up from the change log
        encoder = CountingEncoder()
        with TestClient(create_app(replica(tmp_path, "b", database_url), encoder)) as b:
            wait_ready(b)
            assert loaded_from(b, "database") == 1 and loaded_from(b, "build") == 0
            assert encoder.texts == len(COOKING)  # the edit's examples only, not one seed exemplar
            assert b.get("/v1/index").json()["version"] == a.get("/v1/index").json()["version"]
            assert b.get("/v1/index/verify").json()["ok"] is True
            guard_a = a.app.state.ctx.runtime.require().guard  # type: ignore[attr-defined]
            guard_b = b.app.state.ctx.runtime.require().guard  # type: ignore[attr-defined]
            assert guard_a.exemplars == guard_b.exemplars and guard_a.labels == guard_b.labels


def test_a_corrupt_newest_artifact_is_skipped_and_old_ones_pruned(
    tmp_path: Path, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with TestClient(create_app(replica(tmp_path, "a", database_url, artifact_keep=2), HashingEncoder())) as a:
        wait_ready(a)
        for _ in range(3):
            assert rebuild_and_wait(a)["status"] == "succeeded"
        sessions = a.app.state.ctx.sessions  # type: ignore[attr-defined]
        with sessions() as session:
            kept = IndexArtifactRepository(session).newest()
        assert [k.version for k in kept] == [4, 3]  # v1 (start-up) and v2 pruned
        with session_scope(sessions) as session:
            session.execute(
                update(IndexArtifactChunk).where(IndexArtifactChunk.artifact_id == kept[0].id).values(data=b"rot")
            )
        encoder = CountingEncoder()
        with caplog.at_level(logging.INFO), TestClient(create_app(replica(tmp_path, "b", database_url), encoder)) as b:
            wait_ready(b)
            assert "skipping the index artifact in the database: index artifact v4" in caplog.text
            # v3 was loaded, then found older than the v4 build: rebuilt from its vectors (only the benign background
            # texts a build calibrates against are embedded again, no exemplar)
            assert loaded_from(b, "database") == 1 and encoder.texts == len(load_background(FIXTURES))
            assert b.get("/v1/index/verify").json()["ok"] is True


def test_a_follower_waits_for_a_full_builds_artifact_then_loads_it(tmp_path: Path, database_url: str) -> None:
    """Between a build's commit and its artifact being stored a poll stays behind, rather than refit on its own."""
    with TestClient(create_app(replica(tmp_path, "a", database_url), HashingEncoder())) as a:
        wait_ready(a)  # before B starts: B then loads A's start-up build rather than building its own
        with TestClient(create_app(replica(tmp_path, "b", database_url), HashingEncoder())) as b:
            wait_ready(b)
            follow_a_rebuild(a, b, database_url)


def follow_a_rebuild(a: TestClient, b: TestClient, database_url: str) -> None:
    """A rebuilds; B polls before A's artifact is in the database (it waits), then after (it loads it)."""
    built = rebuild_and_wait(a)["version"]
    drop_stored_artifacts(database_url)  # as if polled before the builder stored it
    follower = IndexFollower(b.app.state.ctx.following, 1.0)  # type: ignore[attr-defined]
    assert b.portal.call(follower.step) is None  # type: ignore[union-attr]
    before = loaded_from(b, "database")
    a.app.state.ctx.lifecycle.artifacts.publish(built)  # type: ignore[attr-defined]
    assert b.portal.call(follower.step) == built  # type: ignore[union-attr]
    assert loaded_from(b, "database") == before + 1
    guard_a = a.app.state.ctx.runtime.require().guard  # type: ignore[attr-defined]
    guard_b = b.app.state.ctx.runtime.require().guard  # type: ignore[attr-defined]
    assert guard_a.checksum() == guard_b.checksum()
