"""decision log indexes for the console and retention: (created_at, category) replaces (created_at); (category, id)

The decisions page filters by category newest first, counts decisions per category over the last hour and day, and
retention and exports select by time. The composite (created_at, category) serves every query the old created_at
index served, so that one goes rather than cost the writer a third index per row. On a large existing log the
upgrade builds both indexes once at start-up (minutes for tens of millions of rows).

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 01:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index("ix_decisions_created_at_category", ["created_at", "category"], unique=False)
        batch_op.create_index("ix_decisions_category_id", ["category", "id"], unique=False)
        batch_op.drop_index(batch_op.f("ix_decisions_created_at"))


def downgrade() -> None:
    with op.batch_alter_table("decisions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_decisions_created_at"), ["created_at"], unique=False)
        batch_op.drop_index("ix_decisions_category_id")
        batch_op.drop_index("ix_decisions_created_at_category")
