"""Alembic: upgrade head from nothing, models and migrations agree, downgrade is clean, the CLI path works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect

from service.db import models  # noqa: F401  (registers the tables)
from service.db.engine import Base, alembic_config, create_db_engine, upgrade_database
from tests.service.support import server_env

ROOT = Path(__file__).resolve().parents[2]
TABLES = {"topics", "exemplars", "index_builds", "api_keys", "decisions", "index_lock", "index_artifacts"}


def test_models_and_migrations_agree(database_url: str) -> None:
    upgrade_database(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diff = compare_metadata(context, Base.metadata)
        assert diff == [], f"models and migrations disagree; run `alembic revision --autogenerate`: {diff}"
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()


def test_downgrade_to_base_and_back(database_url: str) -> None:
    config = alembic_config(database_url)
    command.upgrade(config, "head")
    command.downgrade(config, "base")
    engine = create_db_engine(database_url)
    try:
        assert not TABLES & set(inspect(engine).get_table_names())
    finally:
        engine.dispose()
    command.upgrade(config, "head")


def test_single_head() -> None:
    heads = ScriptDirectory.from_config(alembic_config()).get_heads()
    assert len(heads) == 1, f"several migration heads {heads}; merge them with `alembic merge heads`"


def test_alembic_cli_from_the_repo_root(tmp_path: Path) -> None:
    env = server_env()
    env["LIGHTGUARD_DATABASE_URL"] = f"sqlite:///{tmp_path / 'cli.db'}"
    alembic = Path(sys.executable).parent / "alembic"
    done = subprocess.run(
        [str(alembic), "upgrade", "head"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    engine = create_db_engine(env["LIGHTGUARD_DATABASE_URL"])
    try:
        assert set(inspect(engine).get_table_names()) >= TABLES
    finally:
        engine.dispose()
