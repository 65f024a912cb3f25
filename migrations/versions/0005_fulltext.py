"""Full-text search: the artifact_text index (SQLite FTS5; PostgreSQL tsvector with a GIN index).

The index gets an entry for every existing artifact, with its filename, summary and meta values;
the text of existing artifacts' content needs their bytes, which a migration cannot read:
``chuk-admin reindex`` adds it.

Revision ID: 0005_fulltext
Revises: 0004_shares
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0005_fulltext"
down_revision: str | Sequence[str] | None = "0004_shares"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The schema as of this revision (a revision keeps its own copy: later code may change).
DDL = {
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
DROP = {
    "sqlite": ("DROP TRIGGER IF EXISTS artifact_text_delete", "DROP TABLE IF EXISTS artifact_text"),
    "postgresql": ("DROP TABLE IF EXISTS artifact_text",),
}
_WORD = re.compile(r"[^\W_]+")


def _words(text: str) -> str:
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return " ".join(_WORD.findall("".join(c for c in decomposed if not unicodedata.combining(c))))


def _meta_text(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [t for v in value.values() for t in _meta_text(v)]
    if isinstance(value, list):
        return [t for v in value for t in _meta_text(v)]
    if value is None:
        return []
    return [value if isinstance(value, str) else str(value).lower()]


def upgrade() -> None:
    bind = op.get_bind()
    dialect = bind.dialect.name
    if dialect not in DDL:
        return
    for statement in DDL[dialect]:
        op.execute(statement)
    fold = (lambda text: text) if dialect == "sqlite" else _words
    key = "rowid" if dialect == "sqlite" else "row_id"
    insert = sa.text(
        f"INSERT INTO artifact_text ({key}, name, summary, meta, content) VALUES (:row_id, :name, :summary, :meta, '')"
    )
    select = sa.text(
        "SELECT row_id, filename, summary, meta FROM artifacts WHERE row_id > :last ORDER BY row_id LIMIT 1000"
    )
    last = -1
    while rows := bind.execute(select, {"last": last}).all():  # a thousand at a time
        batch = []
        for row_id, filename, summary, meta in rows:
            if isinstance(meta, (str, bytes)):
                meta = json.loads(meta)
            batch.append(
                {
                    "row_id": row_id,
                    "name": fold(filename or ""),
                    "summary": fold(summary or ""),
                    "meta": fold(" ".join(_meta_text(meta))),
                }
            )
        bind.execute(insert, batch)
        last = rows[-1][0]


def downgrade() -> None:
    for statement in DROP.get(op.get_bind().dialect.name, ()):
        op.execute(statement)
