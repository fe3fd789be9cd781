"""Alembic migrations of the lightguard database (imports only service.db and service.models)."""
