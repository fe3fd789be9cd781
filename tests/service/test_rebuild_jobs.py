"""POST /v1/index/rebuild as a job (issue 19): 202 with a Location to poll, 409 while one runs (in any process), the
deprecated `?wait=true`, a failed build reported with its error while the old index serves, builds whose process is
gone reported failed, and progress read through another worker (each backend)."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from service.db.engine import session_scope
from service.db.models import utcnow
from service.serving.interprocess import FileLock
from service.settings import Settings
from service.usecases.build_liveness import STALE_AFTER_S
from tests.service.support import (
    COOKING_PARAPHRASE,
    create_cooking,
    insert_running_build,
    make_settings,
    wait_build,
    wait_ready,
)


class BlockingEncoder(HashingEncoder):
    """Once `hold` is set, batches of several texts (a build's, not a classify's) block on `release` after the first
    one went through (`entered` set), or raise once `fail` is set: a build stops mid-way, on an event."""

    def __init__(self) -> None:
        super().__init__()
        self.hold = False
        self.fail = False
        self.batches = 0
        self.entered = threading.Event()
        self.release = threading.Event()

    def encode(self, texts: Sequence[str], batch_size: int = 32):  # type: ignore[no-untyped-def]
        if self.hold and len(texts) > 1:
            self.batches += 1
            if self.batches > 1:
                if self.fail:
                    raise RuntimeError("the encoder ran out of memory")
                self.entered.set()
                assert self.release.wait(30), "the test never released the build"
        return super().encode(texts, batch_size)


@pytest.fixture
def shared(tmp_path: Path, database_url: str) -> Settings:
    return make_settings(tmp_path, follow_interval_s=0, database_url=database_url)


def running(client: TestClient, location: str) -> dict[str, Any]:
    """Poll until the build reports progress past its first batch (the heartbeat writes it within a second)."""
    for _ in range(1_000):
        build = client.get(location).json()
        assert build["status"] in ("queued", "running"), build
        if build["progress"] is not None and build["progress"]["embedded"] > 0:
            return dict(build)
        threading.Event().wait(0.01)  # polling interval
    raise AssertionError(f"no progress reported: {build}")


def test_rebuild_answers_202_and_its_location_polls_to_succeeded(shared: Settings) -> None:
    with TestClient(create_app(shared, HashingEncoder())) as client:
        wait_ready(client)
        before = client.get("/v1/index").json()["version"]
        started = client.post("/v1/index/rebuild")
        assert started.status_code == 202, started.text
        job = started.json()
        assert started.headers["Location"] == f"/v1/index/builds/{job['id']}"
        assert job["status"] in ("queued", "running") and job["version"] is None and job["trigger"] == "rebuild"
        done = wait_build(client, started.headers["Location"])
        assert done["status"] == "succeeded" and done["error"] is None, done
        assert done["version"] > before and done["version"] == client.get("/v1/index").json()["version"]
        assert done["progress"]["embedded"] == done["progress"]["total"] > 0
        assert done["exemplar_count"] == client.get("/v1/index").json()["count"]
        assert done["finished_at"] is not None
        assert client.get("/v1/index/builds/999999").status_code == 404


def test_a_second_rebuild_is_refused_while_one_runs_through_either_worker(shared: Settings) -> None:
    """The one-at-a-time rule holds across processes (here two apps on one database): the 409 names the running
    build, whose progress the other worker reads from the database."""
    encoder = BlockingEncoder()
    with (
        TestClient(create_app(shared, encoder)) as a,
        TestClient(create_app(shared, HashingEncoder())) as b,
    ):
        wait_ready(a)
        wait_ready(b)
        create_cooking(a)
        encoder.hold = True
        started = a.post("/v1/index/rebuild")
        assert started.status_code == 202, started.text
        location = started.headers["Location"]
        try:
            assert encoder.entered.wait(10)
            seen = running(b, location)  # through the other worker: from the database
            assert seen["status"] == "running" and 0 < seen["progress"]["embedded"] < seen["progress"]["total"]
            assert seen["heartbeat_at"] is not None and seen["holder"]
            for client in (a, b):
                refused = client.post("/v1/index/rebuild")
                assert refused.status_code == 409, refused.text
                assert refused.json()["error"] == "rebuild_running"
                assert refused.json()["build_id"] == started.json()["id"]
                assert refused.headers["Location"] == location
            # the old index serves meanwhile
            verdict = a.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()
            assert verdict["category"] == "cooking"
        finally:
            encoder.release.set()
        done = wait_build(b, location)
        assert done["status"] == "succeeded", done
        assert b.post("/v1/index/rebuild?wait=true").status_code == 200  # free again


def test_wait_true_keeps_the_old_blocking_contract(client: TestClient) -> None:
    before = client.get("/v1/index").json()
    answer = client.post("/v1/index/rebuild", params={"wait": "true"})
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["status"] == "ready" and body["rebuilding"] is False and body["progress"] is None
    assert body["version"] > before["version"] and body["count"] == before["count"]
    assert body["recent_builds"][0]["trigger"] == "rebuild" and body["recent_builds"][0]["status"] == "ready"


def test_a_failed_build_reports_its_error_and_the_old_index_keeps_serving(tmp_path: Path) -> None:
    encoder = BlockingEncoder()
    with TestClient(create_app(make_settings(tmp_path), encoder)) as client:
        wait_ready(client)
        create_cooking(client)
        before = client.get("/v1/index").json()
        encoder.hold = encoder.fail = True
        started = client.post("/v1/index/rebuild")
        assert started.status_code == 202, started.text
        failed = wait_build(client, started.headers["Location"])
        assert failed["status"] == "failed" and "the encoder ran out of memory" in failed["error"], failed
        assert failed["version"] is None and failed["finished_at"] is not None
        after = client.get("/v1/index").json()
        assert after["status"] == "ready" and after["version"] == before["version"] and not after["rebuilding"]
        assert client.post("/v1/classify", json={"text": COOKING_PARAPHRASE}).json()["category"] == "cooking"
        encoder.hold = encoder.fail = False
        waited = client.post("/v1/index/rebuild?wait=true")  # the deprecated contract: the error, as before
        assert waited.status_code == 200, waited.text


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()  # reaped: the pid names no process
    return proc.pid


@pytest.mark.parametrize(
    ("holder", "heartbeat_age_s", "reason"),
    [
        (f"{socket.gethostname()}:{dead_pid()}", 0.0, "interrupted"),  # killed on this host: at once
        ("another-host:4242", STALE_AFTER_S + 5, "abandoned"),  # another host that stopped beating
    ],
    ids=["process-gone", "heartbeat-stale"],
)
def test_a_build_whose_process_is_gone_is_reported_failed(
    shared: Settings, holder: str, heartbeat_age_s: float, reason: str
) -> None:
    with TestClient(create_app(shared, HashingEncoder())) as client:
        wait_ready(client)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with session_scope(ctx.sessions) as session:  # as a process left it when it died mid-build
            build_id = insert_running_build(session, holder, utcnow() - timedelta(seconds=heartbeat_age_s))
        gone = client.get(f"/v1/index/builds/{build_id}").json()
        assert gone["status"] == "failed" and gone["error"].startswith(reason), gone
        assert holder in gone["error"]
        # and it blocks no new rebuild
        assert client.post("/v1/index/rebuild?wait=true").status_code == 200


def test_a_live_build_of_another_process_is_not_taken_for_dead(shared: Settings) -> None:
    """A fresh heartbeat from another host's process: still running, and a new rebuild is refused."""
    with TestClient(create_app(shared, HashingEncoder())) as client:
        wait_ready(client)
        ctx = client.app.state.ctx  # type: ignore[attr-defined]
        with session_scope(ctx.sessions) as session:
            build_id = insert_running_build(session, "another-host:4242", utcnow(), trigger="startup")
        assert client.get(f"/v1/index/builds/{build_id}").json()["status"] == "running"
        refused = client.post("/v1/index/rebuild")
        assert refused.status_code == 409 and refused.json()["build_id"] == build_id


def test_a_queued_rebuild_takes_a_version_above_the_edits_committed_while_it_waited(tmp_path: Path) -> None:
    """Queued behind the home's build lock (held here as another process's build would), the job reads `queued`; an
    edit commits meanwhile, and another while it embeds; it succeeds above both (found by the soak: the version it
    was started with was not stored, so an edit during the build took the same one and the finish collided)."""
    encoder = BlockingEncoder()
    with TestClient(create_app(make_settings(tmp_path), encoder)) as client:
        wait_ready(client)
        lifecycle = client.app.state.ctx.lifecycle  # type: ignore[attr-defined]
        with FileLock(lifecycle.build_lock.path).hold():
            started = client.post("/v1/index/rebuild")
            assert started.status_code == 202, started.text
            queued = client.get(started.headers["Location"]).json()
            assert queued["status"] == "queued" and queued["progress"] is None, queued
            while_queued = create_cooking(client)["index_version"]
            encoder.hold = True
        try:
            assert encoder.entered.wait(10)  # started, embedding
            # one example: the blocking encoder holds only batches of several texts (the build's)
            during = client.post("/v1/topics", json={"name": "baking", "examples": ["bake a pie"]})
            assert during.status_code == 201, during.text
        finally:
            encoder.release.set()
        done = wait_build(client, started.headers["Location"])
        assert done["status"] == "succeeded", done
        assert done["version"] > during.json()["index_version"] > while_queued
        assert client.get("/v1/index/verify").json()["ok"] is True
