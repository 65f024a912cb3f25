"""Initial catalog: artifacts, artifact_meta, sessions, uploads, upload_parts, catalog_info.

Revision ID: 0001_initial
Revises:
Create Date: 2026-11-24
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001_initial"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The column types as chuk_artifacts.schema defined them at this revision (a revision must not
# change when schema.py does later). On PostgreSQL: byte-order collation for prefix-searched
# text, JSON stored as text (exact floats); on SQLite the row id is INTEGER PRIMARY KEY (the rowid).
Name = sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")
Mime = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")
Json = sa.JSON()
RowId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "artifacts",
        sa.Column("row_id", RowId, autoincrement=True, nullable=False),
        sa.Column("artifact_id", sa.String(64), nullable=False),
        sa.Column("sandbox_id", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=True),
        sa.Column("owner_id", sa.String(128), nullable=True),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("mime", Mime, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("filename", Name, nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("meta", Json, nullable=False),
        sa.Column("ttl", sa.BigInteger(), nullable=True),
        sa.Column("stored_at", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("storage_provider", sa.String(32), nullable=False),
        sa.Column("session_provider", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("row_id", name=op.f("pk_artifacts")),
        sa.UniqueConstraint("artifact_id", name=op.f("uq_artifacts_artifact_id")),
        sa.UniqueConstraint("key", name=op.f("uq_artifacts_key")),
    )
    op.create_index("ix_artifacts_owner", "artifacts", ["sandbox_id", "owner_id", "scope", "row_id"])
    op.create_index("ix_artifacts_owner_all", "artifacts", ["sandbox_id", "owner_id", "row_id"])
    op.create_index("ix_artifacts_session", "artifacts", ["sandbox_id", "session_id", "row_id"])
    op.create_index(
        "ix_artifacts_session_filename",
        "artifacts",
        ["sandbox_id", "session_id", "filename", "row_id"],
    )
    op.create_index("ix_artifacts_scope", "artifacts", ["sandbox_id", "scope", "row_id"])
    op.create_index("ix_artifacts_sandbox", "artifacts", ["sandbox_id", "row_id"])
    op.create_index("ix_artifacts_mime", "artifacts", ["sandbox_id", "mime", "row_id"])
    op.create_index("ix_artifacts_filename", "artifacts", ["sandbox_id", "filename", "row_id"])
    op.create_index("ix_artifacts_expires_at", "artifacts", ["sandbox_id", "expires_at"])
    op.create_index("ix_artifacts_state", "artifacts", ["sandbox_id", "state", "updated_at"])

    op.create_table(
        "artifact_meta",
        sa.Column("row_id", RowId, nullable=False),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("value", sa.String(300), nullable=False),
        sa.ForeignKeyConstraint(
            ["row_id"],
            ["artifacts.row_id"],
            name=op.f("fk_artifact_meta_row_id_artifacts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("row_id", "name", name=op.f("pk_artifact_meta")),
    )
    op.create_index("ix_artifact_meta_lookup", "artifact_meta", ["name", "value", "row_id"])

    op.create_table(
        "sessions",
        sa.Column("sandbox_id", sa.String(128), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=False),
        sa.Column("user_id", sa.String(128), nullable=True),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("last_accessed_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.Column("ttl", sa.Float(), nullable=False),
        sa.Column("meta", Json, nullable=False),
        sa.PrimaryKeyConstraint("sandbox_id", "session_id", name=op.f("pk_sessions")),
    )
    op.create_index("ix_sessions_user", "sessions", ["sandbox_id", "user_id", "expires_at"])
    op.create_index("ix_sessions_expires_at", "sessions", ["sandbox_id", "expires_at"])

    op.create_table(
        "uploads",
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("artifact_id", sa.String(64), nullable=False),
        sa.Column("sandbox_id", sa.String(128), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("session_id", sa.String(128), nullable=True),
        sa.Column("owner_id", sa.String(128), nullable=True),
        sa.Column("key", sa.String(512), nullable=False),
        sa.Column("filename", Name, nullable=True),
        sa.Column("mime", Mime, nullable=False),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("meta", Json, nullable=False),
        sa.Column("ttl", sa.BigInteger(), nullable=True),
        sa.Column("backend_upload_id", sa.String(1024), nullable=True),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("upload_id", name=op.f("pk_uploads")),
        sa.UniqueConstraint("artifact_id", name=op.f("uq_uploads_artifact_id")),
    )
    op.create_index("ix_uploads_expires_at", "uploads", ["sandbox_id", "expires_at"])

    op.create_table(
        "upload_parts",
        sa.Column("upload_id", sa.String(64), nullable=False),
        sa.Column("part_number", sa.Integer(), nullable=False),
        sa.Column("etag", sa.String(128), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("created_at", sa.Float(), nullable=False),
        sa.ForeignKeyConstraint(
            ["upload_id"],
            ["uploads.upload_id"],
            name=op.f("fk_upload_parts_upload_id_uploads"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("upload_id", "part_number", name=op.f("pk_upload_parts")),
    )

    op.create_table(
        "catalog_info",
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_catalog_info")),
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; children before parents for the foreign keys.
    op.drop_table("catalog_info")
    op.drop_table("upload_parts")
    op.drop_table("uploads")
    op.drop_table("sessions")
    op.drop_table("artifact_meta")
    op.drop_table("artifacts")
