"""Alembic migrations of the lightguard database (imports only service.db.engine and service.db.models)."""
