"""Where audit entries go: a table in the catalog database, or a JSON-lines file. Both only ever
append; the table refuses UPDATE and DELETE with a trigger.

An entry: ``ts`` (epoch seconds), ``time`` (ISO 8601, UTC), ``sandbox_id``, ``action``
(``stored``, ``updated``, ``deleted``, ``expired``, ``session_created``, ``session_deleted``,
``session_expired``, or the refused method for a denial), ``outcome`` (``allowed``/``denied``),
``user_id``/``session_id`` (who), ``artifact_id`` (which) and ``detail`` (a JSON object).
"""

from __future__ import annotations

import json
import os
import re
import threading
import time
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any, Protocol

from sqlalchemy import (
    JSON,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    create_engine,
    select,
)

__all__ = ["FIELDS", "TABLE_NAME", "CatalogSink", "JsonlSink", "Sink", "open_sink", "parse_since"]

TABLE_NAME = "chuk_audit_log"
FIELDS = ("ts", "time", "sandbox_id", "action", "outcome", "user_id", "session_id", "artifact_id", "detail")

metadata = MetaData()
audit_log = Table(
    TABLE_NAME,
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("time", String(40), nullable=False),
    Column("sandbox_id", String(128), nullable=False),
    Column("action", String(64), nullable=False),
    Column("outcome", String(16), nullable=False),
    Column("user_id", String(128)),
    Column("session_id", String(128)),
    Column("artifact_id", String(128)),
    Column("detail", JSON, nullable=False),
    Index("ix_chuk_audit_log_ts", "ts"),
    Index("ix_chuk_audit_log_user", "user_id", "ts"),
    Index("ix_chuk_audit_log_artifact", "artifact_id", "ts"),
)

_APPEND_ONLY = {
    "sqlite": [
        f"CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_update BEFORE UPDATE ON {TABLE_NAME} "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
        f"CREATE TRIGGER IF NOT EXISTS {TABLE_NAME}_no_delete BEFORE DELETE ON {TABLE_NAME} "
        "BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END",
    ],
    "postgresql": [
        f"CREATE OR REPLACE FUNCTION {TABLE_NAME}_append_only() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN RAISE EXCEPTION 'the audit log is append-only'; END $$",
        f"DROP TRIGGER IF EXISTS {TABLE_NAME}_append_only ON {TABLE_NAME}",
        f"CREATE TRIGGER {TABLE_NAME}_append_only BEFORE UPDATE OR DELETE ON {TABLE_NAME} "
        f"FOR EACH ROW EXECUTE FUNCTION {TABLE_NAME}_append_only()",
    ],
}


class Sink(Protocol):
    def record(self, entry: dict[str, Any]) -> None: ...

    def query(self, **filters: Any) -> list[dict[str, Any]]: ...


def entry(
    *,
    sandbox_id: str,
    action: str,
    outcome: str,
    user_id: str | None,
    session_id: str | None,
    artifact_id: str | None,
    detail: dict[str, Any] | None = None,
) -> dict[str, Any]:
    now = time.time()
    return {
        "ts": now,
        "time": datetime.fromtimestamp(now, timezone.utc).isoformat().replace("+00:00", "Z"),
        "sandbox_id": sandbox_id,
        "action": action,
        "outcome": outcome,
        "user_id": user_id,
        "session_id": session_id,
        "artifact_id": artifact_id,
        "detail": detail or {},
    }


def _matches(
    e: dict[str, Any],
    user: str | None,
    artifact: str | None,
    action: str | None,
    outcome: str | None,
    since: float | None,
) -> bool:
    return (
        (user is None or e.get("user_id") == user)
        and (artifact is None or e.get("artifact_id") == artifact)
        and (action is None or e.get("action") == action)
        and (outcome is None or e.get("outcome") == outcome)
        and (since is None or e.get("ts", 0) >= since)
    )


class JsonlSink:
    """One JSON object per line, appended with a single ``write`` on an ``O_APPEND`` descriptor,
    so lines from several threads or processes never interleave."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._lock = threading.Lock()

    def record(self, entry: dict[str, Any]) -> None:
        line = (json.dumps(entry, ensure_ascii=False, separators=(",", ":")) + "\n").encode()
        directory = os.path.dirname(os.path.abspath(self.path))
        os.makedirs(directory, exist_ok=True)
        with self._lock:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            try:
                os.write(fd, line)
            finally:
                os.close(fd)

    def entries(self) -> Iterable[dict[str, Any]]:
        try:
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    if line.strip():
                        yield json.loads(line)
        except FileNotFoundError:
            return

    def query(
        self,
        *,
        user: str | None = None,
        artifact: str | None = None,
        action: str | None = None,
        outcome: str | None = None,
        since: float | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """The newest ``limit`` matching entries, oldest first."""
        found = [e for e in self.entries() if _matches(e, user, artifact, action, outcome, since)]
        return found[-limit:] if limit else found


class CatalogSink:
    """The ``chuk_audit_log`` table in a store's catalog database, created by the plugin itself
    (it is not part of chuk-artifacts' alembic revisions)."""

    def __init__(self, catalog: Any) -> None:
        self.catalog = catalog
        self._ready = False
        self._lock = threading.Lock()

    def _ensure_table(self, conn: Any) -> None:
        metadata.create_all(conn, checkfirst=True)
        for statement in _APPEND_ONLY.get(conn.dialect.name, []):
            conn.exec_driver_sql(statement)

    def record(self, entry: dict[str, Any]) -> None:
        with self.catalog.write() as conn:  # the store's own transaction helper (locks, retries)
            if not self._ready:
                with self._lock:
                    self._ensure_table(conn)
            conn.execute(audit_log.insert().values(**entry))
        self._ready = True

    def query(self, **filters: Any) -> list[dict[str, Any]]:
        with self.catalog.read() as conn:
            return query_connection(conn, **filters)


def query_connection(
    conn: Any,
    *,
    user: str | None = None,
    artifact: str | None = None,
    action: str | None = None,
    outcome: str | None = None,
    since: float | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """The newest ``limit`` matching rows of the audit table, oldest first (indexed filters)."""
    from sqlalchemy import inspect

    if not inspect(conn).has_table(TABLE_NAME):
        return []
    t = audit_log.c
    stmt = select(audit_log)
    for column, value in ((t.user_id, user), (t.artifact_id, artifact), (t.action, action), (t.outcome, outcome)):
        if value is not None:
            stmt = stmt.where(column == value)
    if since is not None:
        stmt = stmt.where(t.ts >= since)
    stmt = stmt.order_by(t.ts.desc(), t.id.desc())
    if limit:
        stmt = stmt.limit(limit)
    rows = [dict(r._mapping) for r in conn.execute(stmt)]
    rows.reverse()
    return [{k: r[k] for k in FIELDS} for r in rows]


def query_url(url: str, **filters: Any) -> list[dict[str, Any]]:
    """Query the audit table of the catalog at ``url`` (for ``chuk-admin audit``)."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return query_connection(conn, **filters)
    finally:
        engine.dispose()


def open_sink(spec: str | None, catalog: Any = None) -> Sink | None:
    """The sink a ``CHUK_AUDIT_LOG`` value names: ``catalog``, ``jsonl:PATH``; unset/``off``: none."""
    spec = (spec or "").strip()
    if spec in ("", "off", "none", "0"):
        return None
    if spec == "catalog":
        if catalog is None:
            raise ValueError("CHUK_AUDIT_LOG=catalog needs a store's catalog")
        return CatalogSink(catalog)
    if spec.startswith("jsonl:") and len(spec) > len("jsonl:"):
        return JsonlSink(spec[len("jsonl:") :])
    raise ValueError(f"CHUK_AUDIT_LOG={spec!r}: expected 'catalog', 'jsonl:/path/to/audit.jsonl' or 'off'")


_DURATION = re.compile(r"^(\d+(?:\.\d+)?)([smhd])$")


def parse_since(value: str, now: float | None = None) -> float:
    """``--since``: an ISO 8601 time (UTC unless it says otherwise) or a duration ago (``90s``,
    ``15m``, ``2h``, ``7d``); returns epoch seconds."""
    now = time.time() if now is None else now
    match = _DURATION.match(value.strip())
    if match:
        return now - float(match.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[match.group(2)]
    try:
        when = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"--since {value!r}: expected an ISO time or a duration like 15m, 2h, 7d") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()
