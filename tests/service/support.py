"""Helpers shared by the service tests (imported by name; conftest only holds fixtures)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy.orm import Session

from service.db.models import IndexBuild
from service.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).parent / "fixtures"
PG_ADMIN_URL = os.environ.get("LIGHTGUARD_TEST_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def server_env() -> dict[str, str]:
    """This process's environment for a server or CLI subprocess, without the caller's LIGHTGUARD_* settings, except
    the embedding cache and the seed-vector pack (tests/conftest.py turns both off): a subprocess must not read or
    fill the checkout's `.cache/`, nor take vectors from data/seed-vectors.json (a rebuild would take its vectors from
    there and finish before a test can watch it run)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTGUARD_")}
    env["LIGHTGUARD_EMBEDDING_CACHE"] = os.environ.get("LIGHTGUARD_EMBEDDING_CACHE", "off")
    env["LIGHTGUARD_SEED_VECTORS"] = os.environ.get("LIGHTGUARD_SEED_VECTORS", "off")
    return env


COOKING = [
    "how do I bake sourdough bread at home",
    "best recipe for baking a chocolate cake",
    "what oven temperature to bake bread",
    "how long should I knead bread dough",
    "tips for baking a fluffy sponge cake",
]
COOKING_PARAPHRASE = "how do I bake bread dough at home in the oven"


def make_settings(home: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {"home": home, "data_dir": FIXTURES, "encoder": "hashing"}
    values.update(overrides)
    return Settings(**values)


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if client.get("/readyz").status_code == 200:
            return
        time.sleep(0.01)  # polling interval, not a wait for a fixed duration
    raise AssertionError(f"service not ready after {timeout}s: {client.get('/readyz').json()}")


# How long a test waits for a build to end: a liveness bound, not a speed check (benchmarks time builds). A 30k-row
# rebuild with the hashing encoder ends in seconds on a quiet machine and took over 60 s beside a fine-tune.
BUILD_WAIT_S = 180.0


def rebuild_and_wait(http: httpx.Client, timeout: float = BUILD_WAIT_S) -> dict[str, Any]:
    """POST /v1/index/rebuild (202) and poll its Location until the build succeeded or failed; returns the build.
    `http`: a TestClient, or an httpx.Client with the server's base_url and key."""
    started = http.post("/v1/index/rebuild")
    assert started.status_code == 202, started.text
    build = wait_build(http, started.headers["Location"], timeout)
    if isinstance(http, TestClient):  # and its artifact stored, as the blocking POST did before answering
        http.portal.call(http.app.state.ctx.rebuilds.join)  # type: ignore[attr-defined,union-attr]
    return build


def wait_build(http: httpx.Client, location: str, timeout: float = BUILD_WAIT_S) -> dict[str, Any]:
    """Poll a build until it succeeded or failed; returns it."""
    deadline = time.monotonic() + timeout
    while True:
        build = http.get(location)
        assert build.status_code == 200, build.text
        if build.json()["status"] in ("succeeded", "failed"):
            return dict(build.json())
        if time.monotonic() > deadline:
            raise AssertionError(f"build not finished after {timeout}s: {build.json()}")
        time.sleep(0.02)  # polling interval under a deadline


def create_cooking(client: TestClient, **extra: Any) -> dict[str, Any]:
    body = {"name": "cooking", "description": "baking questions", "examples": COOKING} | extra
    response = client.post("/v1/topics", json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def drop_stored_artifacts(database_url: str) -> None:
    """Delete the index artifacts stored in the database, so that a start with an empty home has to build."""
    from sqlalchemy import delete

    from service.db.engine import create_db_engine
    from service.db.models import IndexArtifact, IndexArtifactChunk

    engine = create_db_engine(database_url)
    try:
        with engine.begin() as conn:
            conn.execute(delete(IndexArtifactChunk))
            conn.execute(delete(IndexArtifact))
    finally:
        engine.dispose()


def pg_reachable() -> bool:
    try:
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, connect_timeout=2):
            return True
    except Exception:
        return False


def wait_server_ready(base: str, proc: subprocess.Popen[bytes], log_path: Path, timeout: float) -> None:
    """Poll a uvicorn subprocess's /readyz until 200, failing with its log if it exits or the deadline passes."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"server exited with {proc.returncode}: {log_path.read_text()}")
        try:
            if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"server not ready within {timeout}s")
        time.sleep(0.02)  # polling interval under a deadline


@contextmanager
def fresh_pg_database(prefix: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for a test session, dropped afterwards; skip (or fail under
    LIGHTGUARD_REQUIRE_POSTGRES, as CI sets) when no server is reachable."""
    if not pg_reachable():
        if os.environ.get("LIGHTGUARD_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required (LIGHTGUARD_REQUIRE_POSTGRES) but {PG_ADMIN_URL} is not reachable")
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL}; start one or set LIGHTGUARD_TEST_PG_URL")
    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Server:
    base: str
    proc: subprocess.Popen[bytes]
    log: Path


@contextmanager
def lightguard_server(
    home: Path,
    admin_key: str,
    data_dir: Path = FIXTURES,
    database_url: str | None = None,
    workers: int = 1,
    env: dict[str, str] | None = None,
    timeout: float = 90.0,
    launcher: Literal["cli", "uvicorn"] = "cli",
) -> Iterator[Server]:
    """`lightguard serve` (hashing encoder) in a subprocess on loopback; yields once /readyz says 200.

    With `workers` > 1 the first ready worker ends the wait: callers that need every worker poll for them.
    `launcher="uvicorn"` starts the app with uvicorn's own command line instead (`uvicorn service.app:create_app
    --factory`), as a deployment may.
    """
    port = free_port()
    clean = server_env()
    clean |= {
        "LIGHTGUARD_HOME": str(home),
        "LIGHTGUARD_DATA_DIR": str(data_dir),
        "LIGHTGUARD_ENCODER": "hashing",
        "LIGHTGUARD_ADMIN_KEY": admin_key,
    }
    if database_url is not None:
        clean["LIGHTGUARD_DATABASE_URL"] = database_url
    clean |= env or {}
    if launcher == "uvicorn":
        cmd = [sys.executable, "-m", "uvicorn", "service.app:create_app", "--factory", "--host", "127.0.0.1"]
    else:
        cmd = [sys.executable, "-c", "from service.cli.main import main; main()", "serve", "--host", "127.0.0.1"]
    cmd += ["--port", str(port), "--workers", str(workers), "--log-level", "info"]
    log_path = home / f"server-{port}.log"
    with log_path.open("w") as log:
        # a session of its own: the supervisor and its workers are stopped together, by the group's id
        proc = subprocess.Popen(cmd, cwd=ROOT, env=clean, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    srv = Server(f"http://127.0.0.1:{port}", proc, log_path)
    try:
        wait_server_ready(srv.base, proc, log_path, timeout)
        yield srv
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        with suppress(ProcessLookupError):  # workers a killed supervisor left behind
            os.killpg(proc.pid, signal.SIGKILL)


def insert_running_build(
    session: Session,
    holder: str,
    heartbeat_at: datetime,
    trigger: str = "rebuild",
    embedded: int = 5,
    total: int = 50,
) -> int:
    """A full build row as another process leaves it while it embeds (or when it died doing so); its id."""
    row = IndexBuild(
        version=10_000,
        trigger=trigger,
        model_id="hashing",
        status="building",
        embedded=embedded,
        total=total,
        holder=holder,
        heartbeat_at=heartbeat_at,
    )
    session.add(row)
    session.flush()
    return int(row.id)
