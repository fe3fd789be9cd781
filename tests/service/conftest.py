"""Service test fixtures: the hashing encoder, a real SQLite file per test, a fresh PostgreSQL database per run."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from index import HashingEncoder
from service.app import create_app
from service.settings import Settings
from tests.service.support import fresh_pg_database, make_settings, wait_ready


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # LIGHTGUARD_EMBEDDING_CACHE and LIGHTGUARD_SEED_VECTORS: `off`, set by tests/conftest.py
    kept = (
        "LIGHTGUARD_REQUIRE_POSTGRES",
        "LIGHTGUARD_TEST_PG_URL",
        "LIGHTGUARD_EMBEDDING_CACHE",
        "LIGHTGUARD_SEED_VECTORS",
    )
    for name in list(os.environ):
        if name.startswith("LIGHTGUARD_") and name not in kept:
            monkeypatch.delenv(name)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings, HashingEncoder())) as c:
        wait_ready(c)
        yield c


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each backend in turn: a SQLite file in the test's folder, then a fresh PostgreSQL database of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'lightguard.db'}"
        return
    with fresh_pg_database("lightguard_t") as url:
        yield url


@pytest.fixture(scope="session")
def pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test session (dropped afterwards)."""
    with fresh_pg_database("lightguard_test") as url:
        yield url
