"""Crash safety and quotas: artifacts.pending_key, blob_intents, quota_usage (filled from the rows).

Revision ID: 0002_intents_quotas
Revises: 0001_initial
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002_intents_quotas"
down_revision: str | Sequence[str] | None = "0001_initial"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts") as batch:
        batch.add_column(sa.Column("pending_key", sa.String(512), nullable=True))
        batch.create_index("ix_artifacts_pending", ["sandbox_id", "pending_key"], unique=False)

    op.create_table(
        "blob_intents",
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("sandbox_id", sa.String(128), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_blob_intents")),
    )
    op.create_index("ix_blob_intents_created_at", "blob_intents", ["sandbox_id", "created_at"], unique=False)

    op.create_table(
        "quota_usage",
        sa.Column("sandbox_id", sa.String(128), nullable=False),
        sa.Column("owner_id", sa.String(128), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("sandbox_id", "owner_id", name=op.f("pk_quota_usage")),
    )
    # Usage of the rows already there: per owner, and per sandbox (owner "").
    op.execute(
        "INSERT INTO quota_usage (sandbox_id, owner_id, bytes, count) "
        "SELECT sandbox_id, owner_id, SUM(bytes), COUNT(*) FROM artifacts "
        "WHERE owner_id IS NOT NULL GROUP BY sandbox_id, owner_id"
    )
    op.execute(
        "INSERT INTO quota_usage (sandbox_id, owner_id, bytes, count) "
        "SELECT sandbox_id, '', SUM(bytes), COUNT(*) FROM artifacts GROUP BY sandbox_id"
    )


def downgrade() -> None:
    op.drop_table("quota_usage")
    op.drop_index("ix_blob_intents_created_at", table_name="blob_intents")
    op.drop_table("blob_intents")
    with op.batch_alter_table("artifacts") as batch:
        batch.drop_index("ix_artifacts_pending")
        batch.drop_column("pending_key")
