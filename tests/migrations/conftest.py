"""Migration test fixtures: a SQLite file and a fresh PostgreSQL database per run (skipped when none is reachable)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.support import PG_ADMIN_URL, pg_reachable


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    if not pg_reachable():
        if os.environ.get("LIGHTGUARD_REQUIRE_POSTGRES"):
            pytest.fail(f"PostgreSQL is required (LIGHTGUARD_REQUIRE_POSTGRES) but {PG_ADMIN_URL} is not reachable")
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL}; start one or set LIGHTGUARD_TEST_PG_URL")
    import psycopg

    name = f"lightguard_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url
