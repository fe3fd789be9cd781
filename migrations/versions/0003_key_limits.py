"""per-key limits: api_keys.rate_limit and api_keys.max_concurrency (NULL: the service defaults)

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 22:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # existing keys keep NULL: they follow LIGHTGUARD_RATE_LIMIT / LIGHTGUARD_MAX_CONCURRENCY
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.add_column(sa.Column("rate_limit", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("max_concurrency", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_column("max_concurrency")
        batch_op.drop_column("rate_limit")
