"""multi-worker index: index_builds.topic (the change log workers follow) and the index_lock row

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28 07:05:50.866371
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    lock = op.create_table(
        "index_lock",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("holder", sa.String(length=200), nullable=False),
        sa.Column("acquired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_lock")),
    )
    # the one row every index change locks first
    op.bulk_insert(lock, [{"id": 1, "holder": "", "acquired_at": None}])
    # existing rows keep topic NULL: a follower treats them as full builds (re-reads everything), which is safe
    with op.batch_alter_table("index_builds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topic", sa.String(length=100), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("index_builds", schema=None) as batch_op:
        batch_op.drop_column("topic")

    op.drop_table("index_lock")
