"""Raw reference operations: what the same work costs without chuk-artifacts.

A plain SQLite connection (``sqlite3``) on a catalog with the same tables and indexes, and the
same settings as ours (WAL and ``synchronous=NORMAL`` for a file; an in-memory database for the
memory backend), one row per transaction; plain fsspec writes and reads of the same bytes.
"""

from __future__ import annotations

import json
import os
import sqlite3
import tempfile
import time
import uuid
from typing import Any

from sqlalchemy.dialects import sqlite as sqlite_dialect
from sqlalchemy.schema import CreateIndex, CreateTable

from chuk_artifacts import schema

__all__ = ["RawCatalog", "atomic_write"]


class RawCatalog:
    """One-row inserts and selects on a plain ``sqlite3`` connection (autocommit)."""

    def __init__(self, path: str | None) -> None:
        self.conn = sqlite3.connect(path or ":memory:", isolation_level=None, check_same_thread=False)
        if path:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
        self.conn.execute("PRAGMA foreign_keys=ON")
        dialect = sqlite_dialect.dialect()
        for table in schema.Base.metadata.sorted_tables:
            self.conn.execute(str(CreateTable(table, if_not_exists=True).compile(dialect=dialect)))
            for index in table.indexes:
                self.conn.execute(str(CreateIndex(index, if_not_exists=True).compile(dialect=dialect)))
        self.columns = [c.name for c in schema.artifacts.columns if c.name != "row_id"]
        # Columns added to the schema after this reference was written: what an INSERT that does
        # not name them would store (the column default, else NULL), so the reference keeps
        # inserting a complete row as the schema evolves.
        self.fallback = {
            c.name: (c.default.arg if c.default is not None and c.default.is_scalar else None)
            for c in schema.artifacts.columns
        }
        self.insert_sql = (
            f"INSERT INTO artifacts ({', '.join(self.columns)}) VALUES ({', '.join('?' for _ in self.columns)})"
        )
        self.select_sql = "SELECT * FROM artifacts WHERE artifact_id = ?"

    def row(self, key: str, size: int) -> tuple[Any, ...]:
        """A row shaped like the one ``store()`` writes (no sha256: the raw loop hashes nothing)."""
        now = time.time()
        values = {
            "artifact_id": uuid.uuid4().hex,
            "sandbox_id": "default",
            "scope": "session",
            "session_id": "sess-bench",
            "owner_id": None,
            "key": key,
            "mime": "application/octet-stream",
            "summary": "",
            "filename": "object.bin",
            "bytes": size,
            "sha256": "",
            "meta": json.dumps({}),
            "ttl": 900,
            "stored_at": now,
            "updated_at": now,
            "expires_at": now + 900,
            "state": "committed",
            "version": 1,
            "storage_provider": "raw",
            "session_provider": "raw",
        }
        return tuple(values[c] if c in values else self.fallback[c] for c in self.columns)

    def insert(self, key: str, size: int) -> str:
        values = self.row(key, size)
        self.conn.execute(self.insert_sql, values)
        return values[0]

    def select(self, artifact_id: str) -> tuple[Any, ...]:
        return self.conn.execute(self.select_sql, (artifact_id,)).fetchone()

    def delete(self, artifact_ids: list[str]) -> None:
        for start in range(0, len(artifact_ids), 500):
            chunk = artifact_ids[start : start + 500]
            self.conn.execute(f"DELETE FROM artifacts WHERE artifact_id IN ({', '.join('?' for _ in chunk)})", chunk)

    def close(self) -> None:
        self.conn.close()


def atomic_write(path: str, data: bytes) -> None:
    """What ``LocalBlobs`` guarantees, done by hand: temp file beside the target, fsync, rename."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=os.path.dirname(path))
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
