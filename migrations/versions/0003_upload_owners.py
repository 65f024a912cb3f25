"""Uploads in progress by session and by owner: a deleted or replaced session ends its uploads,
and an owner's open uploads are counted against ``max_open_uploads``.

Revision ID: 0003_upload_owners
Revises: 0002_intents_quotas
Create Date: 2026-12-03
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0003_upload_owners"
down_revision: str | Sequence[str] | None = "0002_intents_quotas"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_uploads_session", "uploads", ["sandbox_id", "session_id"], unique=False)
    op.create_index("ix_uploads_owner", "uploads", ["sandbox_id", "owner_id"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_uploads_owner", table_name="uploads")
    op.drop_index("ix_uploads_session", table_name="uploads")
