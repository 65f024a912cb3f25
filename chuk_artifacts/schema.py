"""The catalog's tables. Schema changes are alembic revisions in the top-level ``migrations/``.

Every query on a request path is served by one of the indexes declared here (the test suite
checks SQLite's query plans), so its cost does not grow with the total number of artifacts.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

#: The alembic revision the code expects; a test checks it is the migrations' head.
SCHEMA_REVISION = "0005_fulltext"

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Byte-order comparison on PostgreSQL too, so prefix ranges (mime, filename) use the index.
Name = String(1024).with_variant(String(1024, collation="C"), "postgresql")
Mime = String(255).with_variant(String(255, collation="C"), "postgresql")
# Plain JSON (text) on every database: JSONB would turn large floats into different integers,
# and meta_filter uses its own index (artifact_meta), not JSONB operators.
Json = JSON()
RowId = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY = SQLite rowid


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class ArtifactRow(Base):
    """One artifact. ``row_id`` orders listings (keyset pagination); ``artifact_id`` is public."""

    __tablename__ = "artifacts"

    row_id: Mapped[int] = mapped_column(RowId, primary_key=True, autoincrement=True)
    artifact_id: Mapped[str] = mapped_column(String(64), unique=True)
    sandbox_id: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str | None] = mapped_column(String(128))
    owner_id: Mapped[str | None] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(512), unique=True)
    mime: Mapped[str] = mapped_column(Mime)
    summary: Mapped[str] = mapped_column(Text, default="")
    filename: Mapped[str | None] = mapped_column(Name)
    bytes: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    ttl: Mapped[int | None] = mapped_column(BigInteger)
    stored_at: Mapped[float] = mapped_column(Float)
    updated_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float | None] = mapped_column(Float)
    #: ``committed``, or ``deleting`` while a delete/sweep removes the bytes (a tombstone).
    state: Mapped[str] = mapped_column(String(16), default="committed")
    #: Set while an ``update_file`` moves new bytes into place: they are committed (the row's size
    #: and sha256 describe them) but still at this staging key. Readers read it first; the
    #: writer (or, after a crash, cleanup) moves it over ``key`` and clears it.
    pending_key: Mapped[str | None] = mapped_column(String(512))
    #: Incremented by every update: the optimistic-locking token.
    version: Mapped[int] = mapped_column(Integer, default=1)
    storage_provider: Mapped[str] = mapped_column(String(32))
    session_provider: Mapped[str] = mapped_column(String(32))

    __table_args__ = (
        Index("ix_artifacts_owner", "sandbox_id", "owner_id", "scope", "row_id"),
        Index("ix_artifacts_owner_all", "sandbox_id", "owner_id", "row_id"),
        Index("ix_artifacts_session", "sandbox_id", "session_id", "row_id"),
        Index("ix_artifacts_session_filename", "sandbox_id", "session_id", "filename", "row_id"),
        Index("ix_artifacts_scope", "sandbox_id", "scope", "row_id"),
        Index("ix_artifacts_sandbox", "sandbox_id", "row_id"),
        Index("ix_artifacts_mime", "sandbox_id", "mime", "row_id"),
        Index("ix_artifacts_filename", "sandbox_id", "filename", "row_id"),
        Index("ix_artifacts_expires_at", "sandbox_id", "expires_at"),
        Index("ix_artifacts_state", "sandbox_id", "state", "updated_at"),
        Index("ix_artifacts_pending", "sandbox_id", "pending_key"),
    )


class ArtifactMetaRow(Base):
    """Top-level ``meta`` entries, indexed for ``meta_filter`` equality search.

    ``value`` is the canonical JSON of the entry, or ``sha256:<hex>`` of it when that is long.
    """

    __tablename__ = "artifact_meta"

    row_id: Mapped[int] = mapped_column(RowId, ForeignKey("artifacts.row_id", ondelete="CASCADE"), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    value: Mapped[str] = mapped_column(String(300))

    __table_args__ = (Index("ix_artifact_meta_lookup", "name", "value", "row_id"),)


class SessionRow(Base):
    """A session of the catalog-backed session provider."""

    __tablename__ = "sessions"

    sandbox_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    user_id: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)
    last_accessed_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    #: The session's lifetime in seconds; using the session slides its expiry by this much.
    ttl: Mapped[float] = mapped_column(Float)
    meta: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)

    __table_args__ = (
        Index("ix_sessions_user", "sandbox_id", "user_id", "expires_at"),
        Index("ix_sessions_expires_at", "sandbox_id", "expires_at"),
    )


class UploadRow(Base):
    """An upload in progress (presigned PUT or multipart); becomes an artifact when completed."""

    __tablename__ = "uploads"

    upload_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))  # presigned | multipart
    artifact_id: Mapped[str] = mapped_column(String(64), unique=True)
    sandbox_id: Mapped[str] = mapped_column(String(128))
    scope: Mapped[str] = mapped_column(String(16))
    session_id: Mapped[str | None] = mapped_column(String(128))
    owner_id: Mapped[str | None] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(512))
    filename: Mapped[str | None] = mapped_column(Name)
    mime: Mapped[str] = mapped_column(Mime)
    summary: Mapped[str] = mapped_column(Text, default="")
    meta: Mapped[dict[str, Any]] = mapped_column(Json, default=dict)
    ttl: Mapped[int | None] = mapped_column(BigInteger)
    backend_upload_id: Mapped[str | None] = mapped_column(String(1024))
    state: Mapped[str] = mapped_column(String(16), default="open")
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (
        Index("ix_uploads_expires_at", "sandbox_id", "expires_at"),
        Index("ix_uploads_session", "sandbox_id", "session_id"),
        Index("ix_uploads_owner", "sandbox_id", "owner_id"),
    )


class UploadPartRow(Base):
    """One uploaded part of a multipart upload, with the ETag the gateway or S3 returned."""

    __tablename__ = "upload_parts"

    upload_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("uploads.upload_id", ondelete="CASCADE"), primary_key=True
    )
    part_number: Mapped[int] = mapped_column(Integer, primary_key=True)
    etag: Mapped[str] = mapped_column(String(128))
    size: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[float] = mapped_column(Float)


class BlobIntentRow(Base):
    """Bytes being written that no row references yet: recorded before the write, removed in the
    transaction that inserts the row. What a crashed writer leaves, cleanup deletes."""

    __tablename__ = "blob_intents"

    key: Mapped[str] = mapped_column(String(512), primary_key=True)
    sandbox_id: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)

    __table_args__ = (Index("ix_blob_intents_created_at", "sandbox_id", "created_at"),)


class QuotaUsageRow(Base):
    """Bytes and count of the artifact rows of one owner (``owner_id`` ``""``: the whole sandbox),
    kept in the transactions that insert, resize and delete rows, so quotas are checked atomically."""

    __tablename__ = "quota_usage"

    sandbox_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    owner_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class ShareRow(Base):
    """A share link: a revocable, expiring, counted URL for one artifact (``shares.py``).

    Only the sha256 of the link's token is stored; the token itself is shown once, at creation.
    Deleting the artifact deletes its links (``ON DELETE CASCADE``).
    """

    __tablename__ = "shares"

    share_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    sandbox_id: Mapped[str] = mapped_column(String(128))
    artifact_id: Mapped[str] = mapped_column(String(64), ForeignKey("artifacts.artifact_id", ondelete="CASCADE"))
    #: Who created it: the user (``None`` for a session without a user, or the application),
    #: and the session the call named.
    created_by: Mapped[str | None] = mapped_column(String(128))
    created_session: Mapped[str | None] = mapped_column(String(128))
    created_at: Mapped[float] = mapped_column(Float)
    expires_at: Mapped[float] = mapped_column(Float)
    max_downloads: Mapped[int | None] = mapped_column(BigInteger)
    downloads: Mapped[int] = mapped_column(BigInteger, default=0)
    #: ``scrypt$n$r$p$salt$hash`` (base64), or ``None`` for a link without a password.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    disposition: Mapped[str] = mapped_column(String(16), default="attachment")
    revoked_at: Mapped[float | None] = mapped_column(Float)
    last_used_at: Mapped[float | None] = mapped_column(Float)

    __table_args__ = (
        Index("ix_shares_artifact", "artifact_id"),
        Index("ix_shares_created_by", "sandbox_id", "created_by", "created_at"),
        Index("ix_shares_created_session", "sandbox_id", "created_session", "created_at"),
        Index("ix_shares_expires_at", "sandbox_id", "expires_at"),
    )


class CatalogInfoRow(Base):
    """Small persisted settings of a catalog (for example the generated presign secret)."""

    __tablename__ = "catalog_info"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


artifacts = cast(Table, ArtifactRow.__table__)
artifact_meta = cast(Table, ArtifactMetaRow.__table__)
sessions = cast(Table, SessionRow.__table__)
uploads = cast(Table, UploadRow.__table__)
upload_parts = cast(Table, UploadPartRow.__table__)
catalog_info = cast(Table, CatalogInfoRow.__table__)
blob_intents = cast(Table, BlobIntentRow.__table__)
quota_usage = cast(Table, QuotaUsageRow.__table__)
shares = cast(Table, ShareRow.__table__)


# -- the full-text index ---------------------------------------------------------------------
#
# Not in ``Base.metadata``: its form differs by database, so it is created by the DDL below (by
# ``Catalog.ensure_schema`` for a new catalog, by revision ``0005_fulltext`` for an older one).
# One row per artifact, keyed by the artifact's ``row_id``: its filename (``name``), summary, meta
# values and the text of its content (the first ``text_index_bytes`` of a text-like artifact).
#
# - SQLite: an FTS5 table (bm25 ranking, ``snippet``). FTS5 tables cannot have a foreign key,
#   so a trigger deletes an artifact's text row with the artifact row, on every path that
#   deletes one (a delete, a sweep, a session's end).
# - PostgreSQL: a table of the words (folded, ``fulltext.normalized_words``), a generated
#   ``tsvector`` weighting name > summary > meta > content, a GIN index on it, and a foreign
#   key to ``artifacts`` with ``ON DELETE CASCADE``.
#
# A later revision that rebuilds ``artifacts`` on SQLite (alembic's batch mode copies it to a new
# table) drops the trigger with the old table: it must create ``artifact_text_delete`` again.

#: The full-text index's table, and every table the database keeps for it (SQLite's FTS5
#: shadow tables).
TEXT_TABLE = "artifact_text"


def is_text_index_table(name: str) -> bool:
    return name == TEXT_TABLE or name.startswith(TEXT_TABLE + "_")


TEXT_INDEX_DDL: dict[str, tuple[str, ...]] = {
    "sqlite": (
        "CREATE VIRTUAL TABLE artifact_text USING fts5("
        "name, summary, meta, content, tokenize = 'unicode61 remove_diacritics 2')",
        "CREATE TRIGGER artifact_text_delete AFTER DELETE ON artifacts "
        "BEGIN DELETE FROM artifact_text WHERE rowid = old.row_id; END",
    ),
    "postgresql": (
        "CREATE TABLE artifact_text ("
        "row_id BIGINT NOT NULL, "
        "name TEXT NOT NULL DEFAULT '', summary TEXT NOT NULL DEFAULT '', "
        "meta TEXT NOT NULL DEFAULT '', content TEXT NOT NULL DEFAULT '', "
        "document TSVECTOR GENERATED ALWAYS AS ("
        "setweight(to_tsvector('simple'::regconfig, name), 'A') || "
        "setweight(to_tsvector('simple'::regconfig, summary), 'B') || "
        "setweight(to_tsvector('simple'::regconfig, meta), 'C') || "
        "setweight(to_tsvector('simple'::regconfig, content), 'D')) STORED, "
        "CONSTRAINT pk_artifact_text PRIMARY KEY (row_id), "
        "CONSTRAINT fk_artifact_text_row_id_artifacts FOREIGN KEY (row_id) "
        "REFERENCES artifacts (row_id) ON DELETE CASCADE)",
        "CREATE INDEX ix_artifact_text_document ON artifact_text USING gin (document)",
    ),
}

TEXT_INDEX_DROP: dict[str, tuple[str, ...]] = {
    "sqlite": ("DROP TRIGGER IF EXISTS artifact_text_delete", "DROP TABLE IF EXISTS artifact_text"),
    "postgresql": ("DROP TABLE IF EXISTS artifact_text",),
}

_text_metadata = MetaData()
#: The index's columns for statements (``catalog.py``): on SQLite ``row_id`` is the FTS5
#: table's ``rowid``; on PostgreSQL ``document`` is generated from the others.
artifact_text_sqlite = Table(
    TEXT_TABLE,
    _text_metadata,
    Column("rowid", Integer, key="row_id", primary_key=True),
    Column("name", Text),
    Column("summary", Text),
    Column("meta", Text),
    Column("content", Text),
)
artifact_text_postgresql = Table(
    TEXT_TABLE,
    MetaData(),
    Column("row_id", BigInteger, primary_key=True),
    Column("name", Text),
    Column("summary", Text),
    Column("meta", Text),
    Column("content", Text),
    Column("document", Text),  # a tsvector, only ever read by the database itself
)
