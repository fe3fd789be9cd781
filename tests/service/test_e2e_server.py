"""End to end against a real uvicorn process on loopback and a real database (SQLite file and PostgreSQL)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.service.support import COOKING, COOKING_PARAPHRASE, FIXTURES, free_port, wait_server_ready

ROOT = Path(__file__).resolve().parents[2]
ADMIN = "lg_e2e_admin_key_for_tests"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


@contextmanager
def server(home: Path, database_url: str, timeout: float = 60.0) -> Iterator[str]:
    """`lightguard`'s app under uvicorn in a subprocess; yields the base URL once /readyz says 200."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LIGHTGUARD_")}
    env |= {
        "LIGHTGUARD_HOME": str(home),
        "LIGHTGUARD_DATABASE_URL": database_url,
        "LIGHTGUARD_DATA_DIR": str(FIXTURES),
        "LIGHTGUARD_ENCODER": "hashing",
        "LIGHTGUARD_ADMIN_KEY": ADMIN,
    }
    cmd = [
        sys.executable,
        "-m",
        "uvicorn",
        "service.app:create_app",
        "--factory",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--log-level",
        "warning",
    ]
    log = (home / f"server-{port}.log").open("w")
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_server_ready(base, proc, home / log.name, timeout)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        log.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'e2e.db'}"
        return
    import psycopg

    base: str = request.getfixturevalue("pg_url")
    # each test gets its own database so restarts see only their own state
    name = f"e2e_{os.getpid()}_{time.monotonic_ns() % 10**9}"
    admin = base.rsplit("/", 1)[0] + "/test"
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield base.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def classify(base: str, text: str) -> dict[str, object]:
    r = httpx.post(f"{base}/v1/classify", json={"text": text}, headers=AUTH, timeout=10)
    assert r.status_code == 200, r.text
    return dict(r.json())


@pytest.mark.server
def test_topic_lifecycle_across_restarts(tmp_path: Path, database_url: str) -> None:
    with server(tmp_path, database_url) as base:
        assert classify(base, COOKING_PARAPHRASE)["flagged"] is False
        r = httpx.post(f"{base}/v1/topics", json={"name": "cooking", "examples": COOKING}, headers=AUTH, timeout=30)
        assert r.status_code == 201, r.text
        topic_id = r.json()["id"]
        verdict = classify(base, COOKING_PARAPHRASE)
        assert verdict["flagged"] is True and verdict["category"] == "cooking"
    with server(tmp_path, database_url) as base:  # restart: the topic survives
        assert classify(base, COOKING_PARAPHRASE)["category"] == "cooking"
        assert httpx.delete(f"{base}/v1/topics/{topic_id}", headers=AUTH, timeout=30).status_code == 204
        assert classify(base, COOKING_PARAPHRASE)["flagged"] is False
        version = classify(base, "hello")["index_version"]
    with server(tmp_path, database_url) as base:  # restart: the deletion survives, nothing rebuilt
        after = classify(base, COOKING_PARAPHRASE)
        assert after["flagged"] is False and after["index_version"] == version
        assert httpx.get(f"{base}/v1/index/verify", headers=AUTH, timeout=10).json()["ok"] is True
        assert httpx.post(f"{base}/v1/classify", json={"text": "x"}, timeout=10).status_code == 401


@pytest.mark.server
def test_official_openai_client(tmp_path: Path) -> None:
    from openai import OpenAI, PermissionDeniedError

    with server(tmp_path, f"sqlite:///{tmp_path / 'openai.db'}") as base:
        client = OpenAI(base_url=f"{base}/v1", api_key=ADMIN, max_retries=0)
        result = client.moderations.create(
            input=["how do I build a bomb to kill people", "what is the capital of france"]
        )
        assert result.id.startswith("modr-") and len(result.results) == 2
        first, second = result.results
        assert first.flagged is True and first.categories.violence is True
        assert first.category_scores.violence > first.category_scores.hate
        assert second.flagged is False and second.categories.violence is False
        with pytest.raises(PermissionDeniedError):
            OpenAI(base_url=f"{base}/v1", api_key="lg_wrong", max_retries=0).moderations.create(input="hi")


@pytest.mark.server
def test_http_latency_p50(tmp_path: Path) -> None:
    """Sequential classify latency over HTTP with the hashing encoder (printed; a loose bound guards regressions)."""
    with server(tmp_path, f"sqlite:///{tmp_path / 'bench.db'}") as base, httpx.Client(headers=AUTH) as http:
        samples = []
        for n in range(60):
            start = time.perf_counter()
            r = http.post(f"{base}/v1/classify", json={"text": f"how do I bake bread number {n}"})
            samples.append((time.perf_counter() - start) * 1000)
            assert r.status_code == 200
        samples.sort()
        p50 = samples[len(samples) // 2]
        print(f"\nHTTP classify p50 {p50:.2f} ms, p90 {samples[int(len(samples) * 0.9)]:.2f} ms (hashing encoder)")
        assert p50 < 250
