"""The database scaffold of the CLI commands that work on it directly (keys, decisions): migrate, sessions, exit 1."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import typer
from rich.console import Console

from service.settings import Settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session, sessionmaker

err = Console(stderr=True)


@contextmanager
def migrated_sessions(settings: Settings) -> Iterator[sessionmaker[Session]]:
    """Sessions on the configured database (migrated first); a ServiceError exits 1 with its detail."""
    from service.db.engine import create_db_engine, make_sessionmaker, upgrade_database
    from service.errors import ServiceError

    engine = create_db_engine(settings.resolved_database_url)
    try:
        upgrade_database(settings.resolved_database_url, engine)
        yield make_sessionmaker(engine)
    except ServiceError as exc:
        err.print(f"[red]{exc.detail}")
        raise typer.Exit(1) from exc
    finally:
        engine.dispose()
