"""index artifacts in the database: the saved guard of each committed full build, chunked, for stateless replicas

A replica with an empty LIGHTGUARD_HOME loads the newest artifact from here and catches up the edits after it from
the change log instead of re-embedding every exemplar (docs/deploy.md).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 02:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "index_artifacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("model_id", sa.String(length=200), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_index_artifacts")),
        sa.UniqueConstraint("version", name=op.f("uq_index_artifacts_version")),
    )
    op.create_table(
        "index_artifact_chunks",
        sa.Column("artifact_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["index_artifacts.id"],
            name=op.f("fk_index_artifact_chunks_artifact_id_index_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("artifact_id", "name", "seq", name=op.f("pk_index_artifact_chunks")),
    )


def downgrade() -> None:
    op.drop_table("index_artifact_chunks")
    op.drop_table("index_artifacts")
