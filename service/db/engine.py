"""Database plumbing: the declarative base (with a naming convention), engines, sessions and migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, MetaData, create_engine, event, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"

# Stable constraint names, so Alembic revisions name (and later drop) the same constraint on every backend.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def normalize_url(url: str) -> str:
    """Use the psycopg 3 driver for plain `postgresql://` URLs (SQLAlchemy would pick psycopg2)."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg://" + url.removeprefix("postgresql://")
    if url.startswith("postgres://"):
        return "postgresql+psycopg://" + url.removeprefix("postgres://")
    return url


def create_db_engine(url: str) -> Engine:
    """An engine for `url`; SQLite gets foreign keys on, WAL (synchronous NORMAL) and a busy timeout (the CLI may
    write concurrently)."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        path = url.split("///", 1)[1] if "///" in url else ""
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA journal_mode=WAL")
            # With WAL, NORMAL syncs at checkpoints, not at every commit: no corruption and no lost commit when the
            # process dies (kill -9 included: the WAL is in the OS cache); only a power cut or an OS crash can take
            # back the last commits. FULL fsynced every commit, ~3 ms of CPU per decision-log write here.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_pre_ping=True)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def session_scope(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session that commits on success and rolls back on error (the request's session, the CLI, start-up work).

    A block whose work an index edit already committed (`service.usecases.edits`) has no transaction left to commit.
    """
    session = factory()
    try:
        yield session
        if session.in_transaction():
            session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None, engine: Engine | None = None) -> Any:
    """A programmatic Alembic config on migrations/ (an engine, when given, is reused by env.py)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        # ConfigParser interpolation: a literal % in a password must be doubled.
        config.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    if engine is not None:
        config.attributes["engine"] = engine
    return config


def upgrade_database(url: str, engine: Engine | None = None) -> None:
    """`alembic upgrade head` on `url`."""
    from alembic import command

    command.upgrade(alembic_config(url, engine), "head")


# pg_advisory_lock key of start-up work (migrating, seeding): "lightgrd" as a 64-bit integer
STARTUP_LOCK_KEY = int.from_bytes(b"lightgrd", "big") >> 1


@contextmanager
def startup_lock(engine: Engine) -> Iterator[None]:
    """Hold a database-wide lock while migrating and seeding, so that replicas with different homes (hosts) that
    start together on one PostgreSQL database do it one at a time (a concurrent `alembic upgrade` fails). On SQLite
    a no-op: processes of one host serialise on a file lock in their shared home instead."""
    if engine.dialect.name != "postgresql":
        yield
        return
    with engine.connect() as conn:
        conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": STARTUP_LOCK_KEY})
        conn.commit()
        try:
            yield
        finally:
            conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": STARTUP_LOCK_KEY})
            conn.commit()


def default_database_url() -> str:
    """The URL the settings select (env.py's fallback when alembic is run without one)."""
    from service.settings import Settings

    return Settings().resolved_database_url
