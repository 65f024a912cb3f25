"""The change feed: artifact changes written to a table of the shared catalog, so that an MCP
server hears about changes made by other processes (another server, a script, ``chuk-admin
cleanup``). A lifecycle hook only fires in the process that made the change; the feed carries it
further.

Who writes: a store an MCP server serves with ``watch=True`` (the default for a catalog that is not
in memory), and every store of a process started with ``CHUK_MCP_CHANGE_FEED=1``. Each row carries
its writer's ``origin`` so a server skips what its own store already told it through the hooks.

Who reads: each server polls ``id > watermark`` (the primary key: one index seek per poll, however
large the catalog). PostgreSQL hands out ids before commit, so writers take an ``EXCLUSIVE`` table
lock (readers are not blocked) to commit in id order; SQLite serialises writers anyway. Rows older
than ``RETENTION_SECONDS`` are pruned by the readers. The table belongs to this plugin, created on
first use; it is not part of chuk-artifacts' alembic revisions.
"""

from __future__ import annotations

import logging
import time
import weakref
from typing import Any

from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, delete, func, inspect, select
from sqlalchemy.exc import SQLAlchemyError

from .hub import FEED_ENV_VAR, Change

__all__ = ["ENV_VAR", "FeedReader", "TABLE_NAME", "record"]

logger = logging.getLogger(__name__)

ENV_VAR = FEED_ENV_VAR
TABLE_NAME = "chuk_mcp_changes"
RETENTION_SECONDS = 600.0

metadata = MetaData()
changes = Table(
    TABLE_NAME,
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("ts", Float, nullable=False),
    Column("origin", String(64), nullable=False),
    Column("sandbox_id", String(128), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("artifact_id", String(128), nullable=False),
    Column("scope", String(16), nullable=False),
    Column("owner_id", String(128)),
    Column("session_id", String(128)),
    Index("ix_chuk_mcp_changes_ts", "ts"),
)

_ready: weakref.WeakSet[Any] = weakref.WeakSet()  # catalogs whose table is known to exist


def _ensure_table(catalog: Any, conn: Any) -> None:
    if catalog in _ready:
        return
    try:
        with conn.begin_nested():
            metadata.create_all(conn, checkfirst=True)
    except SQLAlchemyError:
        # Another process created it between the check and the CREATE.
        if not inspect(conn).has_table(TABLE_NAME):
            raise
    _ready.add(catalog)


def record(store: Any, change: Change, origin: str) -> None:
    """Append one change (called by the lifecycle hooks, after the change committed)."""
    catalog = store.catalog
    with catalog.write() as conn:
        _ensure_table(catalog, conn)
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"LOCK TABLE {TABLE_NAME} IN EXCLUSIVE MODE")
        conn.execute(
            changes.insert().values(
                ts=time.time(),
                origin=origin,
                sandbox_id=store.sandbox_id,
                kind=change.kind,
                artifact_id=change.artifact_id,
                scope=change.scope,
                owner_id=change.owner_id,
                session_id=change.session_id,
            )
        )


class FeedReader:
    """Reads the feed of one store's catalog and sandbox from a watermark onwards."""

    def __init__(self, store: Any, origin: str, *, batch: int = 500) -> None:
        self.store = store
        self.origin = origin
        self.batch = batch
        self.watermark: int | None = None
        self._pruned_at = 0.0

    def _table_exists(self, conn: Any) -> bool:
        if self.store.catalog in _ready:
            return True
        exists = bool(inspect(conn).has_table(TABLE_NAME))
        if exists:
            _ready.add(self.store.catalog)
        return exists

    def start(self) -> None:
        """Set the watermark to the newest row: only changes from now on are reported."""
        with self.store.catalog.write() as conn:
            _ensure_table(self.store.catalog, conn)
            self.watermark = conn.execute(select(func.coalesce(func.max(changes.c.id), 0))).scalar_one()

    def poll(self) -> list[Change]:
        """Changes by other origins since the last poll, oldest first."""
        if self.watermark is None:
            self.start()
        found: list[Change] = []
        c = changes.c
        with self.store.catalog.read() as conn:
            if not self._table_exists(conn):
                return found
            rows = conn.execute(
                select(changes).where(c.id > self.watermark).order_by(c.id).limit(self.batch)
            ).mappings()
            for row in rows:
                self.watermark = row["id"]
                if row["origin"] == self.origin or row["sandbox_id"] != self.store.sandbox_id:
                    continue
                found.append(Change(row["kind"], row["artifact_id"], row["scope"], row["owner_id"], row["session_id"]))
        now = time.time()
        if now - self._pruned_at > 60:
            self._pruned_at = now
            self.prune(now - RETENTION_SECONDS)
        return found

    def prune(self, before: float) -> None:
        try:
            with self.store.catalog.write() as conn:
                conn.execute(delete(changes).where(changes.c.ts < before))
        except SQLAlchemyError as exc:  # pruning is housekeeping; the next poll tries again
            logger.warning("could not prune %s: %s", TABLE_NAME, exc)
