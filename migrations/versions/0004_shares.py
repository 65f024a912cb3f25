"""Share links: the shares table (revocable, expiring, counted links to one artifact).

Revision ID: 0004_shares
Revises: 0003_upload_owners
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004_shares"
down_revision: str | Sequence[str] | None = "0003_upload_owners"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "shares",
        sa.Column("share_id", sa.String(64), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("sandbox_id", sa.String(128), nullable=False),
        sa.Column("artifact_id", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(128), nullable=True),
        sa.Column("created_session", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("max_downloads", sa.BigInteger(), nullable=True),
        sa.Column("downloads", sa.BigInteger(), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=True),
        sa.Column("failed_attempts", sa.Integer(), nullable=False),
        sa.Column("disposition", sa.String(16), nullable=False),
        sa.Column("revoked_at", sa.Float(), nullable=True),
        sa.Column("last_used_at", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["artifact_id"],
            ["artifacts.artifact_id"],
            name=op.f("fk_shares_artifact_id_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("share_id", name=op.f("pk_shares")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_shares_token_hash")),
    )
    op.create_index("ix_shares_artifact", "shares", ["artifact_id"], unique=False)
    op.create_index("ix_shares_created_by", "shares", ["sandbox_id", "created_by", "created_at"], unique=False)
    op.create_index(
        "ix_shares_created_session", "shares", ["sandbox_id", "created_session", "created_at"], unique=False
    )
    op.create_index("ix_shares_expires_at", "shares", ["sandbox_id", "expires_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_shares_expires_at", table_name="shares")
    op.drop_index("ix_shares_created_session", table_name="shares")
    op.drop_index("ix_shares_created_by", table_name="shares")
    op.drop_index("ix_shares_artifact", table_name="shares")
    op.drop_table("shares")
