"""Alembic environment: target metadata from service.db.models; URL from the config or LIGHTGUARD_* settings."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Engine

import service.db.models  # noqa: F401  (registers every table on Base.metadata)
from service.db.engine import Base, create_db_engine, default_database_url

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    return config.get_main_option("sqlalchemy.url") or default_database_url()


def run_migrations_offline() -> None:
    context.configure(url=_url(), target_metadata=target_metadata, literal_binds=True, render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = config.attributes.get("engine")
    owned = not isinstance(engine, Engine)
    connectable: Engine = create_db_engine(_url()) if owned else engine
    try:
        with connectable.connect() as connection:
            # render_as_batch: SQLite can only ALTER via table copies; batch mode makes revisions portable.
            context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
            connection.commit()
    finally:
        if owned:
            connectable.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
