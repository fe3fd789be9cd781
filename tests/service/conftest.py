"""Service test fixtures: the hashing encoder, a real SQLite file per test, a fresh PostgreSQL database per run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from service.settings import Settings
from tests.service.support import PG_ADMIN_URL, make_settings, pg_reachable, wait_ready


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("LIGHTGUARD_") and name not in ("LIGHTGUARD_REQUIRE_POSTGRES", "LIGHTGUARD_TEST_PG_URL"):
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, HashingEncoder())) as c:
        wait_ready(c)
        yield c


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    if not pg_reachable():
        if os.environ.get("LIGHTGUARD_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required (LIGHTGUARD_REQUIRE_POSTGRES) but {PG_ADMIN_URL} is not reachable")
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL}; start one or set LIGHTGUARD_TEST_PG_URL")
    import psycopg

    name = f"lightguard_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    try:
        yield f"{base}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
