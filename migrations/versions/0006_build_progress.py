"""rebuilds as jobs: index_builds.embedded / total (progress), holder and heartbeat_at (liveness)

A rebuild asked for over HTTP answers at once and is polled (`GET /v1/index/builds/{id}`), possibly through another
worker or replica than the one building, so its progress and whether its process is alive live in the database.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 04:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # rows of earlier builds keep NULL: no progress to show, and a `building` one without a heartbeat is abandoned
    with op.batch_alter_table("index_builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("embedded", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("total", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("holder", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("heartbeat_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("index_builds", schema=None) as batch_op:
        batch_op.drop_column("heartbeat_at")
        batch_op.drop_column("holder")
        batch_op.drop_column("total")
        batch_op.drop_column("embedded")
