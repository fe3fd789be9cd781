"""Migration test fixtures: a SQLite file and a fresh PostgreSQL database per run (skipped when none is reachable)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.service.support import fresh_pg_database


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    with fresh_pg_database("lightguard_mig") as url:
        yield url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'migrations.db'}"
    url: str = request.getfixturevalue("pg_database")
    return url
