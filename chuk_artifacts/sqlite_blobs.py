"""The ``sqlite`` backend: bytes as chunked rows in a SQLite file, by default the catalog's own.

The whole store (catalog and bytes) is then one file to copy or back up. Two tables, created
here idempotently (``CREATE TABLE IF NOT EXISTS``), not by alembic: they belong to this backend,
not to the catalog's schema, and a catalog on another backend never has them.

- ``blob_objects(id, key, target, size, chunk_size, mtime)``: one row per object. ``key`` is
  ``NULL`` while a streamed write is in progress (``target`` names the key it will replace), so
  a reader never sees a torn object; publishing is one transaction that drops the old object.
- ``blob_chunks(object_id, seq, data)``: the bytes in chunks of ``chunk_size`` (1 MiB), all full
  but the last, so a read at any offset touches only the chunks it needs.

Each thread has its own connection; every open file has its own, and a reader holds a read
transaction (a WAL snapshot) from open to close, so an object replaced or deleted meanwhile
still reads whole. ``joined(connection)`` runs this thread's blob operations on a catalog
connection inside its transaction: the writer uses it when the catalog is this same file
(``Writer.create``: the bytes and the row commit together, or neither).
"""

from __future__ import annotations

import contextlib
import io
import os
import posixpath
import re
import sqlite3
import threading
import time
import weakref
from pathlib import Path
from typing import IO, Any, Iterator

from .blobs import Blobs
from .errors import ProviderError

__all__ = ["SQLiteBlobs", "CHUNK_SIZE", "TABLES"]

#: Bytes per chunk row (every chunk of an object but its last is exactly this long).
CHUNK_SIZE = 1 << 20
#: How ``keys`` names an unpublished object (an interrupted or running streamed write), as a
#: local temp file is named beside its target: ``<dir>/.tmp-<name>.<object id>``. fsck reports
#: an old one as ``stale-temp`` and can quarantine or delete it by that name.
TEMP_PREFIX = ".tmp-"
_PARTIAL = re.compile(r"(?:^|/)\.tmp-[^/]*\.([0-9]+)$")
#: The tables this backend adds to the SQLite file (``chuk-admin`` and fsck know them).
TABLES = ("blob_objects", "blob_chunks")

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS blob_objects ("
    " id INTEGER PRIMARY KEY,"
    " key TEXT UNIQUE,"  # NULL while the object is being written
    " target TEXT NOT NULL,"  # the key it is (or will be) published at
    " size INTEGER NOT NULL,"
    " chunk_size INTEGER NOT NULL,"
    " mtime REAL NOT NULL)",
    "CREATE INDEX IF NOT EXISTS ix_blob_objects_target ON blob_objects (target) WHERE key IS NULL",
    "CREATE TABLE IF NOT EXISTS blob_chunks ("
    " object_id INTEGER NOT NULL,"
    " seq INTEGER NOT NULL,"
    " data BLOB NOT NULL,"
    " PRIMARY KEY (object_id, seq))",
)


@contextlib.contextmanager
def _errors(action: str, key: str) -> Iterator[None]:
    try:
        yield
    except sqlite3.Error as exc:
        raise ProviderError(f"sqlite storage failed to {action} {key!r}: {exc}") from exc


def _partial_name(target: str, object_id: int) -> str:
    return posixpath.join(posixpath.dirname(target), f"{TEMP_PREFIX}{posixpath.basename(target)[:150]}.{object_id}")


def _next_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (``None``: none)."""
    while prefix:
        last = ord(prefix[-1])
        if last < 0x10FFFF:
            return prefix[:-1] + chr(last + 1)
        prefix = prefix[:-1]
    return None


class SQLiteBlobs(Blobs):
    """Objects as chunked rows in the SQLite file ``database`` (see the module doc)."""

    name = "sqlite"

    def __init__(
        self, database: str | os.PathLike[str], *, durable: bool = False, chunk_size: int = CHUNK_SIZE
    ) -> None:
        path = Path(database).expanduser()
        if str(database) in ("", ":memory:"):
            raise ProviderError("the sqlite backend needs a file (ARTIFACT_SQLITE_PATH), not an in-memory database")
        with _errors("open", str(path)):
            path.parent.mkdir(parents=True, exist_ok=True)
        #: The file's resolved path: a catalog in the same file shares its transactions.
        self.database = os.path.realpath(path)
        self.filename = self.database
        self.durable = durable
        self.chunk_size = chunk_size
        self._local = threading.local()
        self._connections: weakref.WeakSet[_Connection] = weakref.WeakSet()
        self._lock = threading.Lock()
        self._closed = False
        super().__init__(None, "")
        with _errors("create the tables of", self.filename):
            conn = self._thread_connection()
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _SCHEMA:
                    conn.execute(statement)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    # -- connections ----------------------------------------------------------------------

    def _connect(self) -> _Connection:
        if self._closed:
            raise ProviderError(f"sqlite storage {self.filename} is closed")
        conn = _Connection(self.filename, timeout=60, isolation_level=None, check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={'FULL' if self.durable else 'NORMAL'}")
        conn.execute("PRAGMA busy_timeout=60000")
        with self._lock:
            self._connections.add(conn)
        return conn

    def _thread_connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    def joined(self, connection: Any) -> contextlib.AbstractContextManager[None]:
        """Run this thread's operations on ``connection`` (a DB-API connection to this same file,
        inside a write transaction) until the block ends: they commit or roll back with it."""
        return self._joined(connection)

    @contextlib.contextmanager
    def _joined(self, connection: Any) -> Iterator[None]:
        previous = getattr(self._local, "joined", None)
        self._local.joined = connection
        try:
            yield
        finally:
            self._local.joined = previous

    @contextlib.contextmanager
    def _write(self) -> Iterator[Any]:
        """A write transaction: the joined one if any, else this thread's, ``BEGIN IMMEDIATE``."""
        joined = getattr(self._local, "joined", None)
        if joined is not None:
            yield joined
            return
        conn = self._thread_connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
            conn.execute("COMMIT")
        except BaseException:
            if conn.in_transaction:  # also a failed COMMIT: the connection must not stay in it
                conn.execute("ROLLBACK")
            raise

    def _reader(self) -> Any:
        joined = getattr(self._local, "joined", None)
        return joined if joined is not None else self._thread_connection()

    # -- objects --------------------------------------------------------------------------

    def _new_object(self, conn: Any, key: str) -> int:
        cur = conn.execute(
            "INSERT INTO blob_objects (key, target, size, chunk_size, mtime) VALUES (NULL, ?, 0, ?, ?)",
            (key, self.chunk_size, time.time()),
        )
        return int(cur.lastrowid)

    @staticmethod
    def _drop(conn: Any, object_id: int) -> None:
        conn.execute("DELETE FROM blob_chunks WHERE object_id = ?", (object_id,))
        conn.execute("DELETE FROM blob_objects WHERE id = ?", (object_id,))

    def _publish(self, conn: Any, object_id: int, key: str, size: int) -> None:
        """Put object ``object_id`` at ``key`` in place of whatever was there (in ``conn``'s transaction)."""
        old = conn.execute("SELECT id FROM blob_objects WHERE key = ?", (key,)).fetchone()
        if old is not None:
            self._drop(conn, old[0])
        conn.execute(
            "UPDATE blob_objects SET key = ?, size = ?, mtime = ? WHERE id = ?", (key, size, time.time(), object_id)
        )

    def _object(self, conn: Any, key: str) -> tuple[int, int, int, float] | None:
        """(id, size, chunk size, mtime) of the object at ``key`` (or of the unpublished object
        ``key`` names, as ``keys`` lists it)."""
        row = conn.execute("SELECT id, size, chunk_size, mtime FROM blob_objects WHERE key = ?", (key,)).fetchone()
        partial = _PARTIAL.search(key) if row is None else None
        if partial is not None:  # (a published key may look like one too: a quarantined temp)
            row = conn.execute(
                "SELECT id, size, chunk_size, mtime FROM blob_objects WHERE id = ? AND key IS NULL",
                (int(partial.group(1)),),
            ).fetchone()
        return None if row is None else (int(row[0]), int(row[1]), int(row[2]), float(row[3]))

    # -- writing --------------------------------------------------------------------------

    def put(self, key: str, data: bytes) -> None:
        view = memoryview(data)
        step = self.chunk_size
        with _errors("write", key), self._write() as conn:
            object_id = self._new_object(conn, key)
            conn.executemany(
                "INSERT INTO blob_chunks (object_id, seq, data) VALUES (?, ?, ?)",
                ((object_id, seq, view[start : start + step]) for seq, start in enumerate(range(0, len(view), step))),
            )
            self._publish(conn, object_id, key, len(view))

    @contextlib.contextmanager
    def open_write(self, key: str) -> Iterator[IO[bytes]]:
        with _errors("write", key):
            conn = self._connect()
        try:
            with _errors("write", key):
                writer = _ChunkWriter(conn, self._new_object(conn, key), self.chunk_size)
            try:
                yield writer  # type: ignore[misc]
                with _errors("write", key):
                    writer.flush_chunks(final=True)
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        self._publish(conn, writer.object_id, key, writer.size)
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            except BaseException:
                with contextlib.suppress(sqlite3.Error):
                    if conn.in_transaction:
                        conn.execute("ROLLBACK")
                    conn.execute("BEGIN IMMEDIATE")
                    self._drop(conn, writer.object_id)
                    conn.execute("COMMIT")
                raise
        finally:
            conn.close()

    def copy(self, src: str, dst: str) -> None:
        with _errors("copy", src), self._write() as conn:
            found = self._object(conn, src)
            if found is None:
                raise FileNotFoundError(src)
            source, size, chunk_size, _mtime = found
            object_id = self._new_object(conn, dst)
            conn.execute("UPDATE blob_objects SET chunk_size = ? WHERE id = ?", (chunk_size, object_id))
            conn.execute(
                "INSERT INTO blob_chunks (object_id, seq, data) SELECT ?, seq, data FROM blob_chunks WHERE object_id = ?",
                (object_id, source),
            )
            self._publish(conn, object_id, dst, size)

    def move(self, src: str, dst: str) -> None:
        """One transaction: the object at ``src`` becomes the one at ``dst``."""
        with _errors("move", src), self._write() as conn:
            found = self._object(conn, src)
            if found is None:
                raise FileNotFoundError(src)
            old = self._object(conn, dst)
            if old is not None:
                self._drop(conn, old[0])
            conn.execute("UPDATE blob_objects SET key = ?, target = ? WHERE id = ?", (dst, dst, found[0]))

    def discard_partial(self, key: str) -> None:
        """Remove what interrupted streamed writes to ``key`` left (unpublished objects)."""
        with _errors("discard partial writes of", key), self._write() as conn:
            for (object_id,) in conn.execute(
                "SELECT id FROM blob_objects WHERE target = ? AND key IS NULL", (key,)
            ).fetchall():
                self._drop(conn, object_id)

    # -- reading --------------------------------------------------------------------------

    def get(self, key: str) -> bytes:
        with _errors("read", key):
            conn = self._reader()
            joined = conn is getattr(self._local, "joined", None)
            if not joined:
                conn.execute("BEGIN")  # one snapshot for the object's row and its chunks
            try:
                found = self._object(conn, key)
                if found is None:
                    raise FileNotFoundError(key)
                rows = conn.execute("SELECT data FROM blob_chunks WHERE object_id = ? ORDER BY seq", (found[0],))
                return b"".join(bytes(r[0]) for r in rows)
            finally:
                if not joined:
                    conn.execute("ROLLBACK")

    def open_read(self, key: str) -> IO[bytes]:
        with _errors("read", key):
            conn = self._connect()
            try:
                conn.execute("BEGIN")  # held until close: the object reads whole, whatever happens
                found = self._object(conn, key)
            except BaseException:
                conn.close()
                raise
        if found is None:
            conn.close()
            raise FileNotFoundError(key)
        object_id, size, chunk_size, _mtime = found
        return io.BufferedReader(_ChunkReader(conn, key, object_id, size, chunk_size), buffer_size=chunk_size)

    def size(self, key: str) -> int | None:
        with _errors("stat", key):
            found = self._object(self._reader(), key)
        return None if found is None else found[1]

    def exists(self, key: str) -> bool:
        return self.size(key) is not None

    def modified(self, key: str) -> float | None:
        with _errors("stat", key):
            found = self._object(self._reader(), key)
        return None if found is None else found[3]

    def keys(self, prefix: str = "grid/") -> Iterator[str]:
        """Published objects below ``prefix``, and unpublished ones (``TEMP_PREFIX`` names)."""
        upper = _next_prefix(prefix)
        bound, args = ("", (prefix,)) if upper is None else (" AND {0} < ?", (prefix, upper))
        with _errors("list", prefix):
            conn = self._reader()
            published = conn.execute(
                "SELECT key FROM blob_objects WHERE key >= ?" + bound.format("key"), args
            ).fetchall()
            partial = conn.execute(
                "SELECT id, target FROM blob_objects WHERE key IS NULL AND target >= ?" + bound.format("target"), args
            ).fetchall()
        names = [key for (key,) in published]
        names += [
            n for n in (_partial_name(target, object_id) for object_id, target in partial) if n.startswith(prefix)
        ]
        yield from sorted(names)

    # -- removing -------------------------------------------------------------------------

    def delete(self, key: str) -> bool:
        with _errors("delete", key), self._write() as conn:
            found = self._object(conn, key)
            if found is None:
                return False
            self._drop(conn, found[0])
        return True

    # -- operations -----------------------------------------------------------------------

    def close(self) -> None:
        self._closed = True
        with self._lock:
            connections = list(self._connections)
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()


class _Connection(sqlite3.Connection):
    """A ``sqlite3.Connection`` that a ``WeakSet`` can hold."""


class _ChunkWriter(io.RawIOBase):
    """Buffers at most one chunk; each full chunk is its own small committed row, so a stream
    of any size holds neither the memory nor the write lock for long."""

    def __init__(self, conn: sqlite3.Connection, object_id: int, chunk_size: int) -> None:
        self.conn, self.object_id, self.chunk_size = conn, object_id, chunk_size
        self.buffer = bytearray()
        self.seq = 0
        self.size = 0

    def writable(self) -> bool:
        return True

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self.buffer += view
        self.size += len(view)
        if len(self.buffer) >= self.chunk_size:
            self.flush_chunks(final=False)
        return len(view)

    def flush_chunks(self, *, final: bool) -> None:
        step = self.chunk_size
        whole = len(self.buffer) if final else len(self.buffer) - len(self.buffer) % step
        if whole == 0:
            return
        self.conn.execute("BEGIN IMMEDIATE")
        view = memoryview(self.buffer)
        try:
            self.conn.executemany(
                "INSERT INTO blob_chunks (object_id, seq, data) VALUES (?, ?, ?)",
                (
                    (self.object_id, self.seq + i, view[start : min(start + step, whole)])
                    for i, start in enumerate(range(0, whole, step))
                ),
            )
            # how far it got, and when: fsck tells a running write from an abandoned one
            self.conn.execute(
                "UPDATE blob_objects SET size = ?, mtime = ? WHERE id = ?",
                (self.size - len(self.buffer) + whole, time.time(), self.object_id),
            )
            self.conn.execute("COMMIT")
        except BaseException:
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise
        finally:
            view.release()
        self.seq += -(-whole // step)
        del self.buffer[:whole]

    def close(self) -> None:  # the owner (``open_write``) publishes; closing the file does not
        super().close()


class _ChunkReader(io.RawIOBase):
    """Reads an object's chunks on demand, from its own connection's snapshot."""

    def __init__(self, conn: sqlite3.Connection, key: str, object_id: int, size: int, chunk_size: int) -> None:
        self.conn, self.key, self.object_id = conn, key, object_id
        self.length, self.chunk_size = size, chunk_size
        self.pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self.pos, io.SEEK_END: self.length}[whence]
        if base + offset < 0:
            raise ValueError("negative seek position")
        self.pos = base + offset
        return self.pos

    def readinto(self, buffer: Any) -> int:
        if self.pos >= self.length:
            return 0
        seq, start = divmod(self.pos, self.chunk_size)
        with _errors("read", self.key):
            row = self.conn.execute(
                "SELECT substr(data, ?, ?) FROM blob_chunks WHERE object_id = ? AND seq = ?",
                (start + 1, min(len(buffer), self.chunk_size - start), self.object_id, seq),
            ).fetchone()
        if row is None:
            raise ProviderError(f"sqlite storage: chunk {seq} of {self.key!r} is missing")
        data = row[0]
        n = len(data)
        buffer[:n] = data
        self.pos += n
        return n

    def close(self) -> None:
        if not self.closed:
            with contextlib.suppress(sqlite3.Error):
                self.conn.close()
        super().close()
