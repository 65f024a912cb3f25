"""The catalog: the only code that speaks SQL. SQLite embedded by default, PostgreSQL to scale out.

Rows are plain dicts. Write transactions on SQLite start with ``BEGIN IMMEDIATE`` so concurrent
writers queue on the busy timeout instead of failing with "database is locked" on upgrade.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import operator
import threading
import weakref
from typing import Any, Callable, Iterator, NamedTuple, Sequence

from sqlalchemy import (
    JSON,
    Float,
    and_,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    func,
    insert,
    inspect,
    literal_column,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError, SQLAlchemyError
from sqlalchemy.pool import StaticPool

from . import schema
from .errors import CatalogVersionError, InvalidArgumentError, ProviderError, QuotaExceededError
from .fulltext import meta_text, normalized_words
from .models import Row
from .schema import (
    SCHEMA_REVISION,
    TEXT_INDEX_DDL,
    artifact_meta,
    artifact_text_postgresql,
    artifact_text_sqlite,
    artifacts,
    blob_intents,
    catalog_info,
    quota_usage,
    sessions,
    shares,
    upload_parts,
    uploads,
)

__all__ = ["Catalog", "meta_index_value"]

_OUR_TABLES = {t.name for t in schema.Base.metadata.sorted_tables}

# Statements of the request path, built once. SQLAlchemy finds a statement's compiled form by a
# cache key that it memoizes on the statement object: a statement built anew for every call
# pays for that key again (about as much as the query itself on SQLite), a prebuilt one does not.
_GET_ARTIFACT = select(artifacts).where(artifacts.c.artifact_id == bindparam("artifact_id"))
_GET_ARTIFACT_FOR_UPDATE = _GET_ARTIFACT.with_for_update()
_GET_ARTIFACT_BY_KEY = select(artifacts).where(artifacts.c.key == bindparam("key"))
# The session and the artifact of a request in one statement (both outer-joined to one row, so
# that either may be missing); the session's columns are prefixed ``s__``.
_ONE_ROW = select(literal_column("1").label("one")).subquery("one_row")
_SESSION_AND_ARTIFACT = select(*[c.label(f"s__{c.name}") for c in sessions.c], *artifacts.c).select_from(
    _ONE_ROW.outerjoin(
        sessions,
        and_(sessions.c.sandbox_id == bindparam("sandbox_id"), sessions.c.session_id == bindparam("session_id")),
    ).outerjoin(artifacts, artifacts.c.artifact_id == bindparam("artifact_id"))
)
_SESSION_COLUMNS = [c.name for c in sessions.c]
_SESSION_WIDTH = len(_SESSION_COLUMNS)
_ARTIFACT_COLUMNS = [c.name for c in artifacts.c]
_INSERT_META = insert(artifact_meta)
_GET_SESSION = select(sessions).where(
    sessions.c.sandbox_id == bindparam("sandbox_id"), sessions.c.session_id == bindparam("session_id")
)
_INSERT_INTENT = insert(blob_intents)
_CLAIM_INTENTS = delete(blob_intents).where(blob_intents.c.key.in_(bindparam("keys", expanding=True)))
_CLAIM_INTENT = delete(blob_intents).where(blob_intents.c.key == bindparam("key"))
_INSERT_ARTIFACT_RETURNING = (
    insert(artifacts)
    .values({c.name: bindparam(c.name, type_=c.type) for c in artifacts.c if c.name != "row_id"})
    .returning(artifacts.c.row_id)
)
_ARTIFACT_DEFAULTS: Row = {"pending_key": None, "summary": "", "state": "committed", "version": 1}
_INSERT_META_ROWS = insert(artifact_meta).values({c.name: bindparam(c.name, type_=c.type) for c in artifact_meta.c})
_DELETE_META = delete(artifact_meta).where(artifact_meta.c.row_id == bindparam("row_id"))
_GET_USAGE = select(quota_usage.c.bytes, quota_usage.c.count).where(
    quota_usage.c.sandbox_id == bindparam("sandbox_id"), quota_usage.c.owner_id == bindparam("owner_id")
)
_ANY_EXPIRED = (
    select(artifacts.c.row_id)
    .where(artifacts.c.sandbox_id == bindparam("sandbox_id"), artifacts.c.expires_at <= bindparam("now"))
    .limit(1)
)
_INSERT_SESSION = insert(sessions).values({c.name: bindparam(c.name, type_=c.type) for c in sessions.c})
_GET_UPLOAD_BY_ARTIFACT = select(uploads).where(uploads.c.artifact_id == bindparam("artifact_id"))
_DELETE_UPLOAD_PARTS = delete(upload_parts).where(upload_parts.c.upload_id == bindparam("upload_id"))
_DELETE_UPLOAD = delete(uploads).where(uploads.c.upload_id == bindparam("upload_id"))
# One artifact deleted (``delete``): tombstone it, then remove it. ``mark_deleting`` and
# ``delete_artifact_rows`` do the same for batches.
_MARK_ONE_DELETING = (
    update(artifacts)
    .where(
        artifacts.c.row_id == bindparam("row_id"),
        or_(artifacts.c.state == "committed", artifacts.c.updated_at < bindparam("stale")),
    )
    .values(state="deleting", updated_at=bindparam("now"))
    .returning(artifacts.c.row_id, artifacts.c.key, artifacts.c.pending_key, artifacts.c.bytes)
)
# A volatile backend's delete (bytes that die with the process need no tombstone first): the row
# goes at once, its meta index and share links with it (``ON DELETE CASCADE``).
_DELETE_ONE_NOW = (
    delete(artifacts)
    .where(
        artifacts.c.row_id == bindparam("row_id"),
        or_(artifacts.c.state == "committed", artifacts.c.updated_at < bindparam("stale")),
    )
    .returning(
        artifacts.c.sandbox_id, artifacts.c.owner_id, artifacts.c.bytes, artifacts.c.key, artifacts.c.pending_key
    )
)
_DELETE_ONE_ARTIFACT = (
    delete(artifacts)
    .where(artifacts.c.row_id == bindparam("row_id"))
    .returning(artifacts.c.sandbox_id, artifacts.c.owner_id, artifacts.c.bytes)
)

# Share links (``shares.py``). Every change of a link is one conditional UPDATE, so concurrent
# requests, in one process or many, can never count past a limit: a download is claimed only
# while the link is live and under its limit, a wrong password counted only under its limit.
_INSERT_SHARE = insert(shares).values({c.name: bindparam(c.name, type_=c.type) for c in shares.c})
_GET_SHARE = select(shares).where(shares.c.share_id == bindparam("share_id"))
_GET_SHARE_BY_TOKEN = select(shares).where(shares.c.token_hash == bindparam("token_hash"))
_CLAIM_SHARE = (
    update(shares)
    .where(
        shares.c.share_id == bindparam("share_id"),
        shares.c.revoked_at.is_(None),
        shares.c.expires_at > bindparam("now"),
        shares.c.failed_attempts < bindparam("max_failures"),
        or_(shares.c.max_downloads.is_(None), shares.c.downloads < shares.c.max_downloads),
    )
    .values(downloads=shares.c.downloads + 1, last_used_at=bindparam("now"))
    .returning(shares.c.downloads)
)
_UNCLAIM_SHARE = (
    update(shares)
    .where(shares.c.share_id == bindparam("share_id"), shares.c.downloads > 0)
    .values(downloads=shares.c.downloads - 1)
)
_FAIL_SHARE_PASSWORD = (
    update(shares)
    .where(shares.c.share_id == bindparam("share_id"), shares.c.failed_attempts < bindparam("max_failures"))
    .values(failed_attempts=shares.c.failed_attempts + 1)
)
_REVOKE_SHARE = (
    update(shares)
    .where(shares.c.share_id == bindparam("share_id"), shares.c.revoked_at.is_(None))
    .values(revoked_at=bindparam("now"))
)


def _usage_update(limit_bytes: bool, limit_count: bool) -> Any:
    u = quota_usage.c
    stmt = (
        update(quota_usage)
        .where(u.sandbox_id == bindparam("u_sandbox"), u.owner_id == bindparam("u_owner"))
        .values(bytes=u.bytes + bindparam("u_bytes"), count=u.count + bindparam("u_count"))
    )
    if limit_bytes:
        stmt = stmt.where(u.bytes + bindparam("u_bytes") <= bindparam("u_max_bytes"))
    if limit_count:
        stmt = stmt.where(u.count + bindparam("u_count") <= bindparam("u_max_count"))
    return stmt


#: The usage UPDATE of an owner and of its sandbox at once (no limits to check).
_ADD_USAGE_BOTH = (
    update(quota_usage)
    .where(
        quota_usage.c.sandbox_id == bindparam("u_sandbox"),
        or_(quota_usage.c.owner_id == bindparam("u_owner"), quota_usage.c.owner_id == ""),
    )
    .values(bytes=quota_usage.c.bytes + bindparam("u_bytes"), count=quota_usage.c.count + bindparam("u_count"))
)
#: The usage UPDATE with and without each limit: (limit bytes?, limit count?) → statement.
_ADD_USAGE = {(b, c): _usage_update(b, c) for b in (False, True) for c in (False, True)}

#: ``UPDATE artifacts … WHERE row_id AND version`` and ``UPDATE sessions``, one statement per set
#: of changed columns, built on first use and kept (a handful of sets occur).
_UPDATE_ARTIFACT: dict[frozenset[str], Any] = {}
_UPDATE_SESSION: dict[frozenset[str], Any] = {}


def _artifact_update(names: frozenset[str]) -> Any:
    stmt = _UPDATE_ARTIFACT.get(names)
    if stmt is None:
        a = artifacts.c
        stmt = (
            update(artifacts)
            .where(a.row_id == bindparam("w_row_id"), a.version == bindparam("w_version"))
            .values({"version": bindparam("w_new_version"), **{n: bindparam(n, type_=a[n].type) for n in names}})
        )
        _UPDATE_ARTIFACT[names] = stmt
    return stmt


#: What the full-text index holds of an artifact row: its ``filename``, ``summary`` and ``meta``.
_TEXT_SOURCES = frozenset({"filename", "summary", "meta"})
_UPDATE_TEXT: dict[tuple[str, frozenset[str]], Any] = {}


def _text_update(dialect: str, names: frozenset[str]) -> Any:
    stmt = _UPDATE_TEXT.get((dialect, names))
    if stmt is None:
        t = artifact_text_sqlite if dialect == "sqlite" else artifact_text_postgresql
        stmt = update(t).where(t.c.row_id == bindparam("t_row_id")).values({n: bindparam(f"t_{n}") for n in names})
        _UPDATE_TEXT[(dialect, names)] = stmt
    return stmt


def _session_update(names: frozenset[str]) -> Any:
    stmt = _UPDATE_SESSION.get(names)
    if stmt is None:
        s = sessions.c
        stmt = (
            update(sessions)
            .where(s.sandbox_id == bindparam("w_sandbox_id"), s.session_id == bindparam("w_session_id"))
            .values({n: bindparam(n, type_=s[n].type) for n in names})
        )
        _UPDATE_SESSION[names] = stmt
    return stmt


def meta_index_value(value: Any) -> str:
    """The indexed form of one top-level meta value: canonical JSON, hashed when long."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    if len(text) <= 256:
        return text
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def encode_cursor(values: Sequence[Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(list(values)).encode()).decode().rstrip("=")


def decode_cursor(cursor: str, *types: type) -> list[Any]:
    """The keyset values of a cursor, which must be of ``types`` (a forged cursor is refused)."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not isinstance(values, list) or len(values) != len(types):
            raise ValueError
        if any(type(v) is not t for v, t in zip(values, types)):
            raise ValueError
        if any(type(v) is int and not 0 <= v < 2**63 for v in values):
            raise ValueError  # row ids are 64-bit: a larger number was never a cursor of ours
        return values
    except (ValueError, TypeError, UnicodeDecodeError):
        raise InvalidArgumentError(f"invalid cursor {cursor!r}") from None


def _prefix_bounds(prefix: str) -> tuple[str, str | None]:
    """The range ``[low, high)`` of the values that start with ``prefix``, in code-point order.

    The upper bound increments the last character that can be incremented, skipping the
    surrogate block (not storable) and dropping trailing U+10FFFF (no successor); ``None``
    when there is none.
    """
    stripped = prefix.rstrip("\U0010ffff")
    if not stripped:
        return prefix, None
    last = ord(stripped[-1]) + 1
    return prefix, stripped[:-1] + chr(0xE000 if 0xD800 <= last <= 0xDFFF else last)


def _bounds_shape(bounds: tuple[str, str | None] | None) -> int:
    return 0 if bounds is None else (1 if bounds[1] is None else 2)


class _SearchShape(NamedTuple):
    """Which filters a search has: what its statement depends on (the values are bound)."""

    scope: bool
    owner: bool
    session: bool
    visibility: str  # none | owner | ownerless | user-of (see ``find_artifacts``)
    mime: int  # 0: no prefix; 1: a lower bound only; 2: a range
    filename: int
    meta: int  # how many meta entries
    by_filename: bool
    cursor: bool
    walk: bool
    text: str = ""  # the dialect of a text search (its statement differs by database); "": none
    snippet: bool = False


#: Search statements by shape, built on first use. Shapes with more meta entries than this are
#: built per call (and run through SQLAlchemy), so the cache stays small.
_MAX_CACHED_META = 8
_SEARCHES: dict[_SearchShape, Any] = {}


def _search_statement(shape: _SearchShape) -> Any:
    stmt = _SEARCHES.get(shape)
    if stmt is None:
        stmt = _build_search(shape)
        if shape.meta <= _MAX_CACHED_META:
            _SEARCHES[shape] = stmt
    return stmt


#: Column weights of the ranking: a word in the filename counts most, then the summary, the
#: meta values, the content.
_TEXT_WEIGHTS = (8.0, 4.0, 2.0, 1.0)
SNIPPET_START, SNIPPET_END = "\u00ab", "\u00bb"  # « and »: plain text, never markup
_PG_CONFIG: Any = literal_column("'simple'::regconfig")


def _text_search(shape: _SearchShape) -> tuple[Any, Any, list[Any], list[Any]]:
    """For a text search: the FROM clause (the index joined to ``artifacts``), the rank (lower
    is better on both databases), the match condition, and the extra result columns."""
    a = artifacts
    if shape.text == "sqlite":
        t = artifact_text_sqlite
        weights = ", ".join(str(w) for w in _TEXT_WEIGHTS)
        rank: Any = literal_column(f"bm25(artifact_text, {weights})", Float)
        match = literal_column("artifact_text").op("MATCH")(bindparam("f_text"))
        extra = [rank.label("rank")]
        if shape.snippet:
            snippet = f"snippet(artifact_text, -1, '{SNIPPET_START}', '{SNIPPET_END}', '\u2026', 16)"
            extra.append(literal_column(snippet).label("snippet"))
        return t.join(a, a.c.row_id == t.c.row_id), rank, [match], extra
    t = artifact_text_postgresql
    query = func.plainto_tsquery(_PG_CONFIG, bindparam("f_text"))
    weights_array = "{" + ", ".join(str(w / 8.0) for w in reversed(_TEXT_WEIGHTS)) + "}"  # D, C, B, A
    # float8: a float4 printed as text does not read back as the same number (the cursor).
    rank = cast(-func.ts_rank(literal_column(f"'{weights_array}'::float4[]"), t.c.document, query), Float(53))
    extra = [rank.label("rank")]
    if shape.snippet:
        body = t.c.name + " " + t.c.summary + " " + t.c.meta + " " + t.c.content
        options = f"'StartSel={SNIPPET_START}, StopSel={SNIPPET_END}, MaxWords=24, MinWords=8'"
        extra.append(func.ts_headline(_PG_CONFIG, body, query, literal_column(options)).label("snippet"))
    return t.join(a, a.c.row_id == t.c.row_id), rank, [t.c.document.op("@@")(query)], extra


def _build_search(shape: _SearchShape) -> Any:
    a = artifacts
    conds: list[Any] = [
        a.c.sandbox_id == bindparam("f_sandbox_id"),
        a.c.state == "committed",
        or_(a.c.expires_at.is_(None), a.c.expires_at > bindparam("f_now")),
    ]
    if shape.scope:
        conds.append(a.c.scope == bindparam("f_scope"))
    if shape.owner:
        conds.append(a.c.owner_id == bindparam("f_owner_id"))
    if shape.session:
        conds.append(a.c.session_id == bindparam("f_session_id"))
    if shape.visibility == "owner":
        conds.append(or_(a.c.owner_id.is_(None), a.c.owner_id == bindparam("f_visible_owner")))
    elif shape.visibility == "ownerless":
        conds.append(a.c.owner_id.is_(None))
    elif shape.visibility == "user-of":
        conds += [a.c.scope == "user", a.c.owner_id == bindparam("f_visible_owner")]
    # One caller's artifacts (an owner or a session) are walked in that index's row_id order,
    # stopping after a page. On SQLite a prefix range would otherwise be served by the
    # sandbox-wide mime / filename index: every user's matches fetched, then sorted. The
    # prefix is then a filter (``column + ""`` is the same text, but no index serves it).
    for name, column, bounds in (("mime", a.c.mime, shape.mime), ("filename", a.c.filename, shape.filename)):
        if bounds:
            target = column + "" if shape.walk else column
            conds.append(target >= bindparam(f"f_{name}_low"))
            if bounds == 2:
                conds.append(target < bindparam(f"f_{name}_high"))
    stmt = select(a)
    row_id = a.c.row_id
    rank: Any = None
    if shape.text:  # driven by the full-text index: cost follows the matches
        source, rank, match, extra = _text_search(shape)
        stmt = select(a, *extra).select_from(source)
        conds += match
    if shape.meta:  # drive the query from the meta index: cost follows the matches
        first = artifact_meta.alias("m0")
        stmt = stmt.join(first, first.c.row_id == a.c.row_id)
        conds += [first.c.name == bindparam("f_meta_name_0"), first.c.value == bindparam("f_meta_value_0")]
        row_id = first.c.row_id  # the same value, but ordered in the meta index
    rest = range(1, shape.meta)
    if len(rest) > _MAX_CACHED_META:
        # Many entries: one grouped sub-select (rows having every pair), not one per entry,
        # whose planning time grows steeply with their number on PostgreSQL.
        m = artifact_meta
        pairs = [
            and_(m.c.name == bindparam(f"f_meta_name_{i}"), m.c.value == bindparam(f"f_meta_value_{i}")) for i in rest
        ]
        grouped = select(m.c.row_id).where(or_(*pairs)).group_by(m.c.row_id).having(func.count() == len(rest))
        conds.append(a.c.row_id.in_(grouped))
    else:
        for index in rest:
            conds.append(
                a.c.row_id.in_(
                    select(artifact_meta.c.row_id).where(
                        artifact_meta.c.name == bindparam(f"f_meta_name_{index}"),
                        artifact_meta.c.value == bindparam(f"f_meta_value_{index}"),
                    )
                )
            )
    order: tuple[Any, ...]
    if rank is not None:  # best first; the cursor is the last row's (rank, row_id)
        order = (rank, a.c.row_id)
        if shape.cursor:
            last_rank: Any = bindparam("f_last_rank", type_=Float(53))
            conds.append(or_(rank > last_rank, and_(rank == last_rank, a.c.row_id > bindparam("f_last_id"))))
    elif shape.by_filename:  # a directory listing: named artifacts, by name
        conds.append(a.c.filename.is_not(None))
        order = (a.c.filename, a.c.row_id)
        if shape.cursor:
            last_name: Any = bindparam("f_last_name")
            last_id: Any = bindparam("f_last_id")
            conds.append(or_(a.c.filename > last_name, and_(a.c.filename == last_name, a.c.row_id > last_id)))
    else:
        order = (row_id,)
        if shape.cursor:
            conds.append(row_id > bindparam("f_last_id"))
    return stmt.where(*conds).order_by(*order).limit(bindparam("f_limit"))


class _Compiled(NamedTuple):
    """A prebuilt statement compiled for one catalog's dialect."""

    statement: Any  # kept, so that its ``id`` cannot be reused while it is cached
    sql: str
    order: tuple[str, ...] | None  # parameter names in positional order; ``None``: named style
    json_binds: tuple[str, ...]  # parameters the driver gets as JSON text
    json_columns: tuple[str, ...]  # result columns decoded from JSON text
    defaults: Row  # values bound in the statement itself (a LIMIT, a literal)
    names: list[str]  # the result's column names, as the driver reports them


def _bind(compiled: _Compiled, params: Row) -> Any:
    if compiled.defaults:
        params = {**compiled.defaults, **params}
    if compiled.json_binds:
        params = {**params}
        for name in compiled.json_binds:
            if name in params:
                value = params[name]
                params[name] = "{}" if not value else json.dumps(value)
    if compiled.order is not None:
        return tuple([params[name] for name in compiled.order])
    return params


def _json_value(text: str | bytes) -> Any:
    return {} if text == "{}" else json.loads(text)  # most meta is empty


def _decode(compiled: _Compiled, values: Sequence[Any]) -> Row:
    row = dict(zip(compiled.names, values))
    for name in compiled.json_columns:
        value = row.get(name)
        if isinstance(value, (str, bytes)):
            row[name] = _json_value(value)
    return row


class Tx:
    """One catalog transaction on a driver (DB-API) cursor, for the request path.

    It runs the module's prebuilt Core statements, compiled once per catalog for its dialect,
    straight on the driver: no SQLAlchemy execution context, result object or event per
    statement, which on SQLite cost several times the statement itself. ``Catalog.write()``
    (an SQLAlchemy ``Connection``) serves everything else; the catalog methods that the
    request path calls accept either.
    """

    __slots__ = ("_catalog", "cursor")

    def __init__(self, catalog: Catalog, cursor: Any) -> None:
        self._catalog = catalog
        self.cursor = cursor

    def execute(self, stmt: Any, params: Row) -> int:
        """Run ``stmt``; the number of rows it changed."""
        compiled = self._catalog._compiled(stmt)
        self.cursor.execute(compiled.sql, _bind(compiled, params))
        return int(self.cursor.rowcount)

    def execute_many(self, stmt: Any, rows: Sequence[Row]) -> None:
        compiled = self._catalog._compiled(stmt)
        self.cursor.executemany(compiled.sql, [_bind(compiled, r) for r in rows])

    def first(self, stmt: Any, params: Row) -> Row | None:
        """The first row ``stmt`` returns (a ``SELECT`` or a statement with ``RETURNING``)."""
        compiled = self._catalog._compiled(stmt)
        cursor = self.cursor
        cursor.execute(compiled.sql, _bind(compiled, params))
        values = cursor.fetchone()
        if values is None:
            return None
        cursor.fetchall()  # the rest, if any: the statement must run to its end
        return _decode(compiled, values)


_FETCH_ONE = operator.methodcaller("fetchone")
_FETCH_ALL = operator.methodcaller("fetchall")


def _rowcount(conn: Connection | Tx, stmt: Any, params: Row) -> int:
    if isinstance(conn, Tx):
        return conn.execute(stmt, params)
    return int(conn.execute(stmt, params).rowcount)


def _first(conn: Connection | Tx, stmt: Any, params: Row) -> Row | None:
    if isinstance(conn, Tx):
        return conn.first(stmt, params)
    row = conn.execute(stmt, params).first()
    return dict(row._mapping) if row is not None else None


#: Rows a connection's read cache keeps at most (it starts again empty when full).
READ_CACHE_ROWS = 2048


class _ReadCache:
    """What a SQLite connection's one-row reads of the request path returned (the driver's
    value tuples, immutable), kept while the database is as it was then: ``stamp`` is what
    tells, read afresh before each use (``Catalog._cached_values``). A different stamp empties
    the cache, so an answer from it is exactly what running the read again would return."""

    __slots__ = ("stamp", "rows")

    def __init__(self) -> None:
        self.stamp: Any = None
        self.rows: dict[tuple[str, tuple[Any, ...]], Any] = {}

    def values(self, conn: Any, stamp: Any, sql: str, args: tuple[Any, ...]) -> Any:
        if conn.in_transaction:  # the connection's own uncommitted changes: never kept
            return conn.execute(sql, args).fetchone()
        rows = self.rows
        if self.stamp != stamp:
            rows.clear()
            self.stamp = stamp
        key = (sql, args)
        values = rows.get(key, _UNSEEN)
        if values is _UNSEEN:
            values = conn.execute(sql, args).fetchone()
            if len(rows) >= READ_CACHE_ROWS:
                rows.clear()
            rows[key] = values
        return values


_UNSEEN = object()


class _Held:
    """A thread's own driver connection (weakly tracked, so that it goes with its thread), and
    its read cache."""

    __slots__ = ("conn", "cache", "__weakref__")

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.cache = _ReadCache()


class Catalog:
    """Tables of artifacts, sessions and uploads in one SQL database."""

    def __init__(
        self,
        url: str,
        *,
        auto_migrate: bool | None = None,
        prepare_connection: Callable[[Any, str], None] | None = None,
        durable: bool = False,
        statement_timeout: float = 0,
    ) -> None:
        self.url = make_url(url)
        #: PostgreSQL cancels a statement that runs longer (seconds; ``0``: never).
        self.statement_timeout = statement_timeout
        #: SQLite files commit with ``synchronous=FULL`` (each commit fsyncs the WAL: survives power
        #: loss) instead of ``NORMAL`` (survives a killed process; the last commits may roll back
        #: after an OS crash or power loss).
        self.durable = durable
        self.dialect = self.url.get_backend_name()
        self.is_sqlite = self.dialect == "sqlite"
        self.in_memory = self.is_sqlite and self.url.database in (None, "", ":memory:")
        #: A SQLite file in WAL mode: its readers never wait for a writer.
        self.wal = self.is_sqlite and not self.in_memory
        # A single shared connection for in-memory SQLite: serialise every transaction on it.
        self._lock: contextlib.AbstractContextManager[Any] = (
            threading.RLock() if self.in_memory else contextlib.nullcontext()
        )
        self.engine = self._create_engine(prepare_connection)
        #: ``id(statement)`` → its compiled form, for ``Tx`` and ``fetch_one`` (prebuilt
        #: statements only: each entry keeps its statement, so an id is never reused).
        self._compiled_cache: dict[int, _Compiled] = {}
        #: Driver connections of the request path: SQLite files keep one per thread (WAL lets
        #: them read and write side by side); in-memory SQLite has one, shared under ``_lock``;
        #: PostgreSQL checks one out of the engine's pool per transaction.
        self._local = threading.local()
        self._thread_connections: weakref.WeakSet[_Held] = weakref.WeakSet()
        self._shared: Any = None
        self._shared_cache = _ReadCache()
        self._closed = False
        self.auto_migrate = self.is_sqlite if auto_migrate is None else auto_migrate
        #: Whether this database has the full-text index (SQLite and PostgreSQL), and its statements.
        self.text_index = self.dialect in TEXT_INDEX_DDL
        text_table = artifact_text_sqlite if self.is_sqlite else artifact_text_postgresql
        self._text_insert = insert(text_table).values(
            {
                "row_id": bindparam("t_row_id"),
                **{name: bindparam(f"t_{name}", value="") for name in ("name", "summary", "meta", "content")},
            }
        )
        self._text_delete = delete(text_table).where(text_table.c.row_id == bindparam("t_row_id"))
        #: ``INSERT … ON CONFLICT DO NOTHING`` of a zero usage row, for this dialect.
        self._ensure_usage_row = self._insert_ignore(quota_usage, ["sandbox_id", "owner_id"]).values(
            {c.name: bindparam(c.name, type_=c.type) for c in quota_usage.c}
        )
        try:
            self.ensure_schema()
            if self.in_memory:  # checked out for good (the pool has just this one connection)
                self._shared_checkout = self.engine.raw_connection()
                self._shared = self._shared_checkout.dbapi_connection
        except BaseException:
            self.engine.dispose()
            raise

    def _create_engine(self, prepare: Callable[[Any, str], None] | None) -> Engine:
        kwargs: dict[str, Any] = {}
        if self.in_memory:
            kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
        elif self.is_sqlite:
            if self.url.database:
                from pathlib import Path

                Path(self.url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            kwargs = {"connect_args": {"check_same_thread": False, "timeout": 60}, "pool_size": 8}
        else:
            kwargs = {"pool_pre_ping": True, "pool_size": 10, "max_overflow": 20, "pool_recycle": 1800}
            if self.dialect == "postgresql" and self.statement_timeout > 0:
                milliseconds = max(1, round(self.statement_timeout * 1000))
                kwargs["connect_args"] = {"options": f"-c statement_timeout={milliseconds}"}
        try:
            engine = create_engine(self.url, **kwargs)
        except (SQLAlchemyError, ImportError) as exc:
            raise ProviderError(f"cannot open catalog {self.safe_url}: {exc}") from exc

        if self.is_sqlite:
            in_memory = self.in_memory
            synchronous = "FULL" if self.durable else "NORMAL"

            @event.listens_for(engine, "connect")
            def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
                cur = dbapi_conn.cursor()
                if not in_memory:
                    cur.execute("PRAGMA journal_mode=WAL")
                    cur.execute(f"PRAGMA synchronous={synchronous}")
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA busy_timeout=60000")
                cur.close()

            @event.listens_for(engine, "begin")
            def _sqlite_begin(conn: Connection) -> None:
                immediate = conn.get_execution_options().get("chuk_write", False)
                statement = "BEGIN IMMEDIATE" if immediate else "BEGIN"
                # Straight to the driver: a full SQLAlchemy execution for BEGIN costs as much as
                # the query that follows it. Errors still surface as DBAPIError (→ ProviderError).
                dbapi_conn: Any = conn.connection.dbapi_connection
                try:
                    dbapi_conn.execute(statement)
                except engine.dialect.loaded_dbapi.Error as exc:
                    raise DBAPIError.instance(
                        statement, None, exc, engine.dialect.loaded_dbapi.Error, dialect=engine.dialect
                    ) from exc

        if prepare is not None:

            @event.listens_for(engine, "connect")
            def _prepare(dbapi_conn: Any, _record: Any) -> None:
                prepare(dbapi_conn, self.dialect)

        return engine

    @property
    def safe_url(self) -> str:
        return self.url.render_as_string(hide_password=True)

    # -- transactions ---------------------------------------------------------------------

    @contextlib.contextmanager
    def read(self) -> Iterator[Connection]:
        with self._transaction(write=False) as conn:
            yield conn

    @contextlib.contextmanager
    def write(self) -> Iterator[Connection]:
        with self._transaction(write=True) as conn:
            yield conn

    @contextlib.contextmanager
    def _transaction(self, write: bool) -> Iterator[Connection]:
        with self._lock:
            try:
                with self.engine.connect() as conn:
                    if write:
                        conn.execution_options(chuk_write=True)
                    with conn.begin():
                        yield conn
            except IntegrityError:
                raise
            except DBAPIError as exc:
                raise ProviderError(f"catalog {self.safe_url} failed: {exc.orig}") from exc

    @contextlib.contextmanager
    def _driver(self) -> Iterator[Any]:
        """A DB-API connection for the request path (see ``_local``)."""
        if self._closed:
            raise ProviderError(f"catalog {self.safe_url} is closed")
        if self.in_memory:
            with self._lock:
                yield self._shared
            return
        if self.is_sqlite:
            holder = getattr(self._local, "holder", None)
            yield holder.conn if holder is not None else self._thread_connection()
            return
        try:
            pooled = self.engine.raw_connection()
        except DBAPIError as exc:
            raise ProviderError(f"catalog {self.safe_url} failed: {exc.orig}") from exc
        try:
            yield pooled
        except self.engine.dialect.loaded_dbapi.IntegrityError:
            raise
        except self.engine.dialect.loaded_dbapi.Error as exc:
            pooled.invalidate(exc)  # the pool must not hand out a broken connection
            raise
        finally:
            pooled.close()

    def _thread_connection(self) -> Any:
        """This thread's own SQLite connection, set up by the engine's ``connect`` events
        (pragmas, the ``prepare_connection`` hook) and then detached from its pool. It closes
        when its thread ends, or when the catalog does."""
        try:
            fairy = self.engine.raw_connection()
        except DBAPIError as exc:
            raise ProviderError(f"catalog {self.safe_url} failed: {exc.orig}") from exc
        fairy.detach()
        holder = _Held(fairy.dbapi_connection)
        self._local.holder = holder
        self._thread_connections.add(holder)
        return holder.conn

    def _compiled(self, stmt: Any) -> _Compiled:
        compiled = self._compiled_cache.get(id(stmt))
        if compiled is not None and compiled.statement is stmt:
            return compiled
        if len(self._compiled_cache) > 1000:
            raise RuntimeError("Tx and fetch_one take prebuilt (module-level) statements only")
        form = stmt.compile(dialect=self.engine.dialect)
        order = tuple(form.positiontup) if form.positional else None
        json_binds = tuple(name for name, bind in form.binds.items() if isinstance(bind.type, JSON))
        columns = getattr(stmt, "selected_columns", None)
        if columns is None or not len(columns):
            columns = getattr(stmt, "_returning", ()) or ()
        json_columns = tuple(c.name for c in columns if isinstance(getattr(c, "type", None), JSON))
        defaults = {
            name: bind.value for name, bind in form.binds.items() if not bind.required and bind.callable is None
        }
        names = [c.name for c in columns]
        compiled = _Compiled(stmt, form.string, order, json_binds, json_columns, defaults, names)
        self._compiled_cache[id(stmt)] = compiled
        return compiled

    @contextlib.contextmanager
    def tx(self) -> Iterator[Tx]:
        """A write transaction of the request path on the driver (``Tx``). SQLite starts it with
        ``BEGIN IMMEDIATE``, so writers queue on the busy timeout instead of failing on upgrade."""
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            with self._driver() as conn:
                cursor = conn.cursor()
                try:
                    if self.is_sqlite:
                        cursor.execute("BEGIN IMMEDIATE")
                    try:
                        yield Tx(self, cursor)
                    except BaseException:
                        if not self.is_sqlite:
                            conn.rollback()
                        elif conn.in_transaction:
                            cursor.execute("ROLLBACK")
                        raise
                    if self.is_sqlite:
                        cursor.execute("COMMIT")
                    else:
                        conn.commit()
                finally:
                    cursor.close()
        except dbapi.Error as exc:
            wrapped = DBAPIError.instance(None, None, exc, dbapi.Error, dialect=self.engine.dialect)
            if isinstance(wrapped, IntegrityError):
                raise wrapped from exc
            raise ProviderError(f"catalog {self.safe_url} failed: {exc}") from exc

    def fetch_one(self, stmt: Any, params: dict[str, Any]) -> Row | None:
        """The first row of one prebuilt ``SELECT`` of the request path, run on the driver
        without an explicit transaction (a single statement reads one consistent snapshot on
        its own: SQLite in autocommit mode, PostgreSQL in its implicit transaction, rolled back
        right after)."""
        compiled = self._compiled(stmt)
        values = self._fetch_values(compiled, _bind(compiled, params))
        return None if values is None else _decode(compiled, values)

    def _fetch_rows(self, compiled: _Compiled, args: Any) -> list[Sequence[Any]]:
        """Every row of ``compiled`` as the driver returns them (a read of the request path)."""
        return self._driver_read(compiled, args, _FETCH_ALL)  # type: ignore[no-any-return]

    def _fetch_values(self, compiled: _Compiled, args: Any) -> Sequence[Any] | None:
        """The first row of ``compiled`` as the driver returns it (``fetch_one``)."""
        return self._driver_read(compiled, args, _FETCH_ONE)  # type: ignore[no-any-return]

    def _cached_values(self, compiled: _Compiled, args: Any) -> Sequence[Any] | None:
        """``_fetch_values`` of a one-row read of the request path (a session, an artifact),
        answered from the connection's ``_ReadCache`` while the SQLite database is unchanged.

        Unchanged means: the connection's own ``total_changes`` counter (every row any
        statement on it inserted, updated or deleted) is the same, and so, on a file, is
        ``PRAGMA data_version``, which SQLite changes whenever another connection (another
        thread's, another process's) commits. An in-memory catalog has one connection, so its
        counter alone tells. Inside a transaction the cache is bypassed. PostgreSQL is not
        cached: nothing as cheap tells it changed."""
        if not self.is_sqlite or not isinstance(args, tuple):
            return self._fetch_values(compiled, args)
        if self._closed:
            raise ProviderError(f"catalog {self.safe_url} is closed")
        try:
            if self.in_memory:
                with self._lock:
                    conn = self._shared
                    return self._shared_cache.values(conn, conn.total_changes, compiled.sql, args)  # type: ignore[no-any-return]
            holder = getattr(self._local, "holder", None)
            if holder is None:
                self._thread_connection()
                holder = self._local.holder
            conn = holder.conn
            stamp = (conn.total_changes, conn.execute("PRAGMA data_version").fetchone()[0])
            return holder.cache.values(conn, stamp, compiled.sql, args)  # type: ignore[no-any-return]
        except self.engine.dialect.loaded_dbapi.Error as exc:
            raise ProviderError(f"catalog {self.safe_url} failed: {exc}") from exc

    def _driver_read(self, compiled: _Compiled, args: Any, fetch: Callable[[Any], Any]) -> Any:
        """Run one read of the request path on its driver connection (see ``_local``), outside a
        transaction; ``fetch(cursor)`` takes its rows."""
        if self._closed:
            raise ProviderError(f"catalog {self.safe_url} is closed")
        dbapi = self.engine.dialect.loaded_dbapi
        try:
            if self.in_memory:
                with self._lock:
                    return fetch(self._shared.execute(compiled.sql, args))
            if self.is_sqlite:
                holder = getattr(self._local, "holder", None)
                conn = holder.conn if holder is not None else self._thread_connection()
                return fetch(conn.execute(compiled.sql, args))
            with self._driver() as conn:
                cursor = conn.cursor()
                try:
                    cursor.execute(compiled.sql, args)
                    rows = fetch(cursor)
                finally:
                    cursor.close()
                conn.rollback()
                return rows
        except dbapi.Error as exc:
            raise ProviderError(f"catalog {self.safe_url} failed: {exc}") from exc

    def close(self) -> None:
        self._closed = True
        for holder in list(self._thread_connections):
            with contextlib.suppress(Exception):
                holder.conn.close()
        if self._shared is not None:
            self._shared = None
            with contextlib.suppress(Exception):
                self._shared_checkout.close()
        self.engine.dispose()

    # -- schema ---------------------------------------------------------------------------

    def schema_revision(self) -> str | None:
        with self.read() as conn:
            return self._revision(conn)

    @staticmethod
    def _revision(conn: Connection) -> str | None:
        if not inspect(conn).has_table("alembic_version"):
            return None
        return conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()

    def ensure_schema(self) -> None:
        """Create a fresh catalog, upgrade an old SQLite one, refuse anything else clearly."""
        with self.read() as conn:
            revision = self._revision(conn)
        if revision == SCHEMA_REVISION:
            return
        if revision is None:
            with self.write() as conn:
                if self.dialect == "postgresql":
                    conn.exec_driver_sql("SELECT pg_advisory_xact_lock(727274)")
                revision = self._revision(conn)
                present = _OUR_TABLES & set(inspect(conn).get_table_names())
                if revision is None and not present:
                    schema.Base.metadata.create_all(conn)
                    for statement in TEXT_INDEX_DDL.get(self.dialect, ()):
                        conn.exec_driver_sql(statement)
                    conn.exec_driver_sql(
                        "CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"
                    )
                    conn.exec_driver_sql(f"INSERT INTO alembic_version (version_num) VALUES ('{SCHEMA_REVISION}')")
                    return
            if revision is None:
                raise CatalogVersionError(
                    f"catalog {self.safe_url} has chuk-artifacts tables but no alembic version; "
                    f"run `chuk-admin migrate stamp --catalog URL` after checking it"
                )
            if revision == SCHEMA_REVISION:
                return
        from . import migrate

        if revision not in migrate.known_revisions():
            raise CatalogVersionError(
                f"catalog {self.safe_url} is at schema revision {revision!r}, which this version "
                f"of chuk-artifacts does not know (it needs {SCHEMA_REVISION!r}): upgrade chuk-artifacts"
            )
        if not self.auto_migrate:
            raise CatalogVersionError(
                f"catalog {self.safe_url} is at schema revision {revision!r} but this version of "
                f"chuk-artifacts needs {SCHEMA_REVISION!r}: run `chuk-admin migrate upgrade --catalog URL` to upgrade it"
            )
        migrate.upgrade(self.engine)

    # -- artifacts ------------------------------------------------------------------------

    def artifact(self, artifact_id: str) -> Row | None:
        """The row of ``artifact_id``, read on its own (``fetch_one``, through the read cache)."""
        return self._cached_one(_GET_ARTIFACT, {"artifact_id": artifact_id})

    def session(self, sandbox_id: str, session_id: str) -> Row | None:
        """The row of a session, read on its own (``fetch_one``, through the read cache)."""
        return self._cached_one(_GET_SESSION, {"sandbox_id": sandbox_id, "session_id": session_id})

    def _cached_one(self, stmt: Any, params: Row) -> Row | None:
        compiled = self._compiled(stmt)
        values = self._cached_values(compiled, _bind(compiled, params))
        return None if values is None else _decode(compiled, values)

    def session_and_artifact(self, sandbox_id: str, session_id: str, artifact_id: str) -> tuple[Row | None, Row | None]:
        """The rows of a session and an artifact, read in one statement (``fetch_one``, through
        the read cache)."""
        compiled = self._compiled(_SESSION_AND_ARTIFACT)
        args = (
            (sandbox_id, session_id, artifact_id)
            if compiled.order is not None
            else {"sandbox_id": sandbox_id, "session_id": session_id, "artifact_id": artifact_id}
        )
        if compiled.order is not None:
            assert compiled.order == ("sandbox_id", "session_id", "artifact_id")
        values = self._cached_values(compiled, args)
        assert values is not None  # one row, whatever exists
        session = artifact = None
        if values[1] is not None:  # the session's columns first, then the artifact's
            session = dict(zip(_SESSION_COLUMNS, values[:_SESSION_WIDTH]))
            if isinstance(session["meta"], (str, bytes)):
                session["meta"] = _json_value(session["meta"])
        if values[_SESSION_WIDTH + 1] is not None:
            artifact = dict(zip(_ARTIFACT_COLUMNS, values[_SESSION_WIDTH:]))
            if isinstance(artifact["meta"], (str, bytes)):
                artifact["meta"] = _json_value(artifact["meta"])
        return session, artifact

    def get_artifact(self, conn: Connection | Tx, artifact_id: str, *, for_update: bool = False) -> Row | None:
        """The row of ``artifact_id``; ``for_update`` locks it until the transaction ends."""
        # for_update: on SQLite the write transaction already holds the lock
        stmt = _GET_ARTIFACT_FOR_UPDATE if for_update else _GET_ARTIFACT
        return _first(conn, stmt, {"artifact_id": artifact_id})

    def lock(self, conn: Connection, name: str) -> None:
        """Serialise transactions that use the same ``name`` until this transaction ends.

        PostgreSQL takes an advisory lock; SQLite write transactions are serialised already.
        """
        if self.dialect == "postgresql":
            key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
            conn.execute(select(func.pg_advisory_xact_lock(key)))

    def insert_artifact(self, conn: Connection | Tx, values: Row, *, text: str | None = None) -> int:
        """Insert an artifact row (and index its meta, and its names and ``text``, the text of
        its content, for full-text search); its ``row_id``."""
        inserted = _first(conn, _INSERT_ARTIFACT_RETURNING, {**_ARTIFACT_DEFAULTS, **values})
        assert inserted is not None
        row_id = int(inserted["row_id"])
        self._index_meta(conn, row_id, values.get("meta") or {})
        if self.text_index:
            merged = {**_ARTIFACT_DEFAULTS, **values}
            self._index_text(conn, row_id, merged, text or "", insert=True)
        return row_id

    def update_artifact(
        self, conn: Connection | Tx, row_id: int, version: int, values: Row, *, text: str | None = None
    ) -> bool:
        """Apply ``values`` if the row is still at ``version`` (optimistic locking); ``text``:
        the new text of its content (new bytes), for the full-text index."""
        stmt = _artifact_update(frozenset(values))
        params = {**values, "w_row_id": row_id, "w_version": version, "w_new_version": version + 1}
        if _rowcount(conn, stmt, params) != 1:
            return False
        if "meta" in values:
            _rowcount(conn, _DELETE_META, {"row_id": row_id})
            self._index_meta(conn, row_id, values["meta"] or {})
        if self.text_index and (text is not None or not _TEXT_SOURCES.isdisjoint(values)):
            self._index_text(conn, row_id, values, text, insert=False)
        return True

    def _index_text(
        self, conn: Connection | Tx, row_id: int, values: Row, content: str | None, *, insert: bool
    ) -> None:
        """Insert or update the row's entry in the full-text index (only the columns whose
        source is in ``values``, and ``content`` unless it is ``None``)."""
        columns: Row = {}
        if "filename" in values:
            columns["name"] = values["filename"] or ""
        if "summary" in values:
            columns["summary"] = values["summary"] or ""
        if "meta" in values:
            columns["meta"] = meta_text(values["meta"])
        if content is not None:
            columns["content"] = content
        if not self.is_sqlite:  # PostgreSQL indexes folded words (``fulltext.normalized_words``)
            columns = {name: normalized_words(value) for name, value in columns.items()}
        if insert:
            _rowcount(conn, self._text_insert, {"t_row_id": row_id, **{f"t_{k}": v for k, v in columns.items()}})
        elif columns:
            stmt = _text_update(self.dialect, frozenset(columns))
            _rowcount(conn, stmt, {"t_row_id": row_id, **{f"t_{k}": v for k, v in columns.items()}})

    def set_text(self, conn: Connection | Tx, row: Row, content: str) -> None:
        """Write the full-text entry of ``row`` anew (``chuk-admin reindex``)."""
        if not self.text_index:
            return
        _rowcount(conn, self._text_delete, {"t_row_id": row["row_id"]})
        self._index_text(conn, row["row_id"], row, content, insert=True)

    def _index_meta(self, conn: Connection | Tx, row_id: int, meta: dict[str, Any]) -> None:
        if not meta:
            return
        entries = [{"row_id": row_id, "name": k, "value": meta_index_value(v)} for k, v in meta.items()]
        if isinstance(conn, Tx):
            conn.execute_many(_INSERT_META_ROWS, entries)
        else:
            conn.execute(_INSERT_META, entries)

    def delete_one(self, conn: Tx, row_id: int, now: float) -> Row | None:
        """Tombstone one committed row (or reclaim a stale tombstone), as ``mark_deleting`` does
        for a batch; the claimed row's ``row_id``, ``key``, ``pending_key`` and ``bytes``."""
        return _first(conn, _MARK_ONE_DELETING, {"row_id": row_id, "now": now, "stale": now - 300.0})

    def delete_now(self, conn: Tx, row_id: int, now: float) -> Row | None:
        """Delete one committed row (or a stale tombstone) in one statement and release its
        usage: ``delete_one`` and ``remove_one`` together, for bytes that cannot outlive a
        crash. The deleted row's ``key``, ``pending_key``, ``bytes``; ``None`` if none was."""
        gone = _first(conn, _DELETE_ONE_NOW, {"row_id": row_id, "stale": now - 300.0})
        if gone is not None:
            self.charge(conn, gone["sandbox_id"], gone["owner_id"], -gone["bytes"], -1)
        return gone

    def remove_one(self, conn: Tx, row_id: int) -> bool:
        """Delete one row claimed by ``delete_one`` and release its usage."""
        _rowcount(conn, _DELETE_META, {"row_id": row_id})
        gone = _first(conn, _DELETE_ONE_ARTIFACT, {"row_id": row_id})
        if gone is None:
            return False
        self.charge(conn, gone["sandbox_id"], gone["owner_id"], -gone["bytes"], -1)
        return True

    def mark_deleting(self, conn: Connection, row_ids: Sequence[int], now: float) -> list[Row]:
        """Tombstone committed rows (or reclaim stale tombstones); return the rows this call claimed."""
        if not row_ids:
            return []
        stale = now - 300.0
        # SKIP LOCKED (PostgreSQL): concurrent sweepers take disjoint rows and never deadlock.
        claimable = (
            select(artifacts.c.row_id)
            .where(
                artifacts.c.row_id.in_(list(row_ids)),
                or_(artifacts.c.state == "committed", artifacts.c.updated_at < stale),
            )
            .with_for_update(skip_locked=True)
        )
        stmt = (
            update(artifacts)
            .where(artifacts.c.row_id.in_(claimable))
            .values(state="deleting", updated_at=now)
            .returning(artifacts.c.row_id, artifacts.c.key, artifacts.c.pending_key, artifacts.c.bytes)
        )
        return [dict(r._mapping) for r in conn.execute(stmt)]

    def get_artifacts_by_row_ids(self, conn: Connection, row_ids: Sequence[int]) -> list[Row]:
        """Whole rows by row id (for lifecycle events of rows about to be removed)."""
        if not row_ids:
            return []
        rows = conn.execute(select(artifacts).where(artifacts.c.row_id.in_(list(row_ids))))
        return [dict(r._mapping) for r in rows]

    def delete_artifact_rows(self, conn: Connection, row_ids: Sequence[int]) -> int:
        """Delete rows (any state) and release their quota usage; returns how many went."""
        if not row_ids:
            return 0
        conn.execute(delete(artifact_meta).where(artifact_meta.c.row_id.in_(list(row_ids))))
        gone = conn.execute(
            delete(artifacts)
            .where(artifacts.c.row_id.in_(list(row_ids)))
            .returning(artifacts.c.sandbox_id, artifacts.c.owner_id, artifacts.c.bytes)
        ).all()
        released: dict[tuple[str, str | None], list[int]] = {}
        for sandbox_id, owner_id, size in gone:
            total = released.setdefault((sandbox_id, owner_id), [0, 0])
            total[0] -= size
            total[1] -= 1
        for (sandbox_id, owner_id), (size, count) in released.items():
            self.charge(conn, sandbox_id, owner_id, size, count)
        return len(gone)

    def any_expired(self, conn: Connection | Tx, sandbox_id: str, now: float) -> bool:
        """Is any artifact of the sandbox past its expiry (and not yet swept)?"""
        return _first(conn, _ANY_EXPIRED, {"sandbox_id": sandbox_id, "now": now}) is not None

    def expired_artifact_ids(self, conn: Connection, sandbox_id: str, now: float, limit: int) -> list[int]:
        """Rows of one sandbox past their expiry, and tombstones left by an interrupted delete."""
        stmt = (
            select(artifacts.c.row_id)
            .where(artifacts.c.sandbox_id == sandbox_id, artifacts.c.expires_at <= now)
            .order_by(artifacts.c.expires_at)
            .limit(limit)
        )
        ids = list(conn.execute(stmt).scalars())
        stale = (
            select(artifacts.c.row_id)
            .where(
                artifacts.c.sandbox_id == sandbox_id,
                artifacts.c.state == "deleting",
                artifacts.c.updated_at < now - 300.0,
            )
            .limit(limit)
        )
        return ids + [i for i in conn.execute(stale).scalars() if i not in ids]

    def find_artifacts(
        self,
        *,
        sandbox_id: str,
        now: float,
        limit: int,
        cursor: str | None = None,
        scope: str | None = None,
        owner_id: str | None = None,
        session_id: str | None = None,
        visible_owner: str | None | bool = False,
        user_scope_only: bool = False,
        mime_prefix: str | None = None,
        filename_prefix: str | None = None,
        meta_filter: dict[str, Any] | None = None,
        order_by_filename: bool = False,
        text: list[str] | None = None,
        snippet: bool = False,
    ) -> tuple[list[Row], str | None]:
        """One page of live artifacts matching every given filter, in a stable order.

        ``visible_owner``: when not ``False``, rows are kept only if they have no owner or that
        owner (``None``: only rows of no owner) — what a caller naming a live session may see of
        it (``access.can_read``). ``user_scope_only``: only that owner's user-scoped rows — what
        a caller naming a session that is not live may still see.

        The statement depends only on which filters are given (its *shape*): one is built per
        shape, kept, and run on the driver like the request path's other statements, with every
        value bound. Shapes with many meta entries are built per call and run through SQLAlchemy.

        ``text``: words (``fulltext.query_words``) that must all be found in the full-text index;
        the rows then come best first (each with its ``rank``, lower is better, and with
        ``snippet`` its highlighted ``snippet``), and the cursor continues after the last
        page's (rank, row_id).
        """
        if text is not None and not self.text_index:
            raise InvalidArgumentError(f"full-text search is not available on {self.dialect} catalogs")
        meta_items = list((meta_filter or {}).items())
        mime_bounds = _prefix_bounds(mime_prefix) if mime_prefix else None
        filename_bounds = _prefix_bounds(filename_prefix) if filename_prefix else None
        params: Row = {"f_sandbox_id": sandbox_id, "f_now": now, "f_limit": limit + 1}
        if scope is not None:
            params["f_scope"] = scope
        if owner_id is not None:
            params["f_owner_id"] = owner_id
        if session_id is not None:
            params["f_session_id"] = session_id
        if isinstance(visible_owner, str):
            params["f_visible_owner"] = visible_owner
        for name, bounds in (("mime", mime_bounds), ("filename", filename_bounds)):
            if bounds is not None:
                params[f"f_{name}_low"] = bounds[0]
                if bounds[1] is not None:
                    params[f"f_{name}_high"] = bounds[1]
        for index, (name, value) in enumerate(meta_items):
            params[f"f_meta_name_{index}"] = name
            params[f"f_meta_value_{index}"] = meta_index_value(value)
        if text is not None:
            params["f_text"] = (
                " ".join(f'"{word}"' for word in text) if self.is_sqlite else " ".join(text)
            )  # quoted: words, never FTS5 syntax; PostgreSQL's plainto_tsquery reads words only
        if cursor:
            if text is not None:
                params["f_last_rank"], params["f_last_id"] = decode_cursor(cursor, float, int)
            elif order_by_filename:
                params["f_last_name"], params["f_last_id"] = decode_cursor(cursor, str, int)
            else:
                (params["f_last_id"],) = decode_cursor(cursor, int)
        walk = (
            self.is_sqlite
            and not order_by_filename
            and not meta_items
            and text is None
            and (owner_id is not None or session_id is not None)
        )
        shape = _SearchShape(
            scope=scope is not None,
            owner=owner_id is not None,
            session=session_id is not None,
            visibility=(
                "none"
                if visible_owner is False
                else ("user-of" if user_scope_only else "owner")
                if isinstance(visible_owner, str)
                else "ownerless"
            ),
            mime=_bounds_shape(mime_bounds),
            filename=_bounds_shape(filename_bounds),
            meta=len(meta_items),
            by_filename=order_by_filename,
            cursor=bool(cursor),
            walk=walk,
            text=self.dialect if text is not None else "",
            snippet=snippet and text is not None,
        )
        stmt = _search_statement(shape)
        if len(meta_items) > _MAX_CACHED_META:
            with self.read() as conn:
                result = [dict(r._mapping) for r in conn.execute(stmt, params)]
        else:
            compiled = self._compiled(stmt)
            result = [_decode(compiled, values) for values in self._fetch_rows(compiled, _bind(compiled, params))]
        next_cursor = None
        if len(result) > limit:
            result = result[:limit]
            last = result[-1]
            if text is not None:
                keys = [float(last["rank"]), last["row_id"]]
            else:
                keys = [last["filename"], last["row_id"]] if order_by_filename else [last["row_id"]]
            next_cursor = encode_cursor(keys)
        return result, next_cursor

    def artifact_stats(self, conn: Connection, sandbox_id: str, now: float) -> dict[str, Any]:
        a = artifacts
        live = and_(
            a.c.sandbox_id == sandbox_id,
            a.c.state == "committed",
            or_(a.c.expires_at.is_(None), a.c.expires_at > now),
        )
        stmt = select(a.c.scope, func.count(), func.coalesce(func.sum(a.c.bytes), 0)).where(live).group_by(a.c.scope)
        by_scope = {scope: {"count": n, "bytes": int(b)} for scope, n, b in conn.execute(stmt)}
        expired = conn.execute(
            select(func.count()).where(a.c.sandbox_id == sandbox_id, a.c.expires_at <= now)
        ).scalar_one()
        return {
            "count": sum(v["count"] for v in by_scope.values()),
            "bytes": sum(v["bytes"] for v in by_scope.values()),
            "by_scope": by_scope,
            "expired_pending_cleanup": expired,
        }

    # -- sessions -------------------------------------------------------------------------

    def get_session(self, conn: Connection | Tx, sandbox_id: str, session_id: str) -> Row | None:
        return _first(conn, _GET_SESSION, {"sandbox_id": sandbox_id, "session_id": session_id})

    def live_user_session(self, conn: Connection, sandbox_id: str, user_id: str, now: float) -> Row | None:
        row = conn.execute(
            select(sessions)
            .where(
                sessions.c.sandbox_id == sandbox_id,
                sessions.c.user_id == user_id,
                sessions.c.expires_at > now,
            )
            .order_by(sessions.c.expires_at.desc())
            .limit(1)
        ).first()
        return dict(row._mapping) if row is not None else None

    def insert_session(self, conn: Connection | Tx, values: Row) -> None:
        _rowcount(conn, _INSERT_SESSION, values)

    def update_session(self, conn: Connection | Tx, sandbox_id: str, session_id: str, values: Row) -> bool:
        params = {**values, "w_sandbox_id": sandbox_id, "w_session_id": session_id}
        return _rowcount(conn, _session_update(frozenset(values)), params) == 1

    def delete_sessions(self, conn: Connection, sandbox_id: str | None, session_ids: Sequence[str]) -> int:
        if not session_ids:
            return 0
        conds: list[Any] = [sessions.c.session_id.in_(list(session_ids))]
        if sandbox_id is not None:
            conds.append(sessions.c.sandbox_id == sandbox_id)
        return conn.execute(delete(sessions).where(*conds)).rowcount

    def expired_sessions(self, conn: Connection, sandbox_id: str, now: float, limit: int) -> list[Row]:
        stmt = (
            select(sessions.c.sandbox_id, sessions.c.session_id)
            .where(sessions.c.sandbox_id == sandbox_id, sessions.c.expires_at <= now)
            .order_by(sessions.c.expires_at)
            .limit(limit)
        )
        return [dict(r._mapping) for r in conn.execute(stmt)]

    def session_artifact_ids(
        self, conn: Connection, sandbox_id: str, session_id: str, limit: int, stored_before: float | None = None
    ) -> list[int]:
        """Session-scoped rows of one session (they go when their session goes); with
        ``stored_before``, only those stored before then (a session's earlier lifetime)."""
        conds = [
            artifacts.c.sandbox_id == sandbox_id,
            artifacts.c.session_id == session_id,
            artifacts.c.scope == "session",
        ]
        if stored_before is not None:
            conds.append(artifacts.c.stored_at < stored_before)
        return list(conn.execute(select(artifacts.c.row_id).where(*conds).limit(limit)).scalars())

    def session_uploads(
        self, conn: Connection, sandbox_id: str, session_id: str, limit: int, created_before: float | None = None
    ) -> list[Row]:
        """Uploads in progress into one session (with ``created_before``: begun before then)."""
        conds = [uploads.c.sandbox_id == sandbox_id, uploads.c.session_id == session_id]
        if created_before is not None:
            conds.append(uploads.c.created_at < created_before)
        return [dict(r._mapping) for r in conn.execute(select(uploads).where(*conds).limit(limit))]

    def count_session_uploads(self, conn: Connection, sandbox_id: str, session_ids: list[str], now: float) -> int:
        """Uploads into these sessions that are not past their own window (those that are are
        counted by ``count_expired_uploads``): what a sweep drops with the sessions."""
        stmt = select(func.count()).where(
            uploads.c.sandbox_id == sandbox_id,
            uploads.c.session_id.in_(session_ids),
            uploads.c.expires_at > now,
            uploads.c.created_at < now,
        )
        return int(conn.execute(stmt).scalar_one())

    def count_open_uploads(
        self, conn: Connection, sandbox_id: str, owner_id: str | None, session_id: str | None
    ) -> int:
        """Uploads in progress of one owner (a user, or else a session of no user)."""
        owner = uploads.c.owner_id == owner_id if owner_id is not None else uploads.c.session_id == session_id
        stmt = select(func.count()).where(uploads.c.sandbox_id == sandbox_id, owner)
        return int(conn.execute(stmt).scalar_one())

    def count_live_sessions(self, conn: Connection, sandbox_id: str, now: float) -> int:
        return conn.execute(
            select(func.count()).where(sessions.c.sandbox_id == sandbox_id, sessions.c.expires_at > now)
        ).scalar_one()

    # -- uploads in progress ----------------------------------------------------------------

    def get_upload(self, conn: Connection, upload_id: str) -> Row | None:
        row = conn.execute(select(uploads).where(uploads.c.upload_id == upload_id)).first()
        return dict(row._mapping) if row is not None else None

    def get_upload_by_artifact(self, conn: Connection | Tx, artifact_id: str) -> Row | None:
        return _first(conn, _GET_UPLOAD_BY_ARTIFACT, {"artifact_id": artifact_id})

    def insert_upload(self, conn: Connection, values: Row) -> None:
        conn.execute(insert(uploads).values(**values))

    def set_upload_state(self, conn: Connection, upload_id: str, expected: str, state: str) -> bool:
        """Move an upload from ``expected`` to ``state``; ``False`` if it was not in ``expected``."""
        result = conn.execute(
            update(uploads).where(uploads.c.upload_id == upload_id, uploads.c.state == expected).values(state=state)
        )
        return result.rowcount == 1

    def delete_upload(self, conn: Connection | Tx, upload_id: str) -> bool:
        _rowcount(conn, _DELETE_UPLOAD_PARTS, {"upload_id": upload_id})
        return _rowcount(conn, _DELETE_UPLOAD, {"upload_id": upload_id}) == 1

    def put_part(self, conn: Connection, values: Row) -> None:
        """Record an uploaded part, replacing an earlier upload of the same part number."""
        conn.execute(
            delete(upload_parts).where(
                upload_parts.c.upload_id == values["upload_id"],
                upload_parts.c.part_number == values["part_number"],
            )
        )
        conn.execute(insert(upload_parts).values(**values))

    def get_parts(self, conn: Connection, upload_id: str) -> dict[int, Row]:
        stmt = select(upload_parts).where(upload_parts.c.upload_id == upload_id)
        return {r.part_number: dict(r._mapping) for r in conn.execute(stmt)}

    def expired_uploads(self, conn: Connection, sandbox_id: str, now: float, limit: int) -> list[Row]:
        stmt = (
            select(uploads)
            .where(uploads.c.sandbox_id == sandbox_id, uploads.c.expires_at <= now)
            .order_by(uploads.c.expires_at)
            .limit(limit)
        )
        return [dict(r._mapping) for r in conn.execute(stmt)]

    def get_artifact_by_key(self, conn: Connection, key: str) -> Row | None:
        row = conn.execute(_GET_ARTIFACT_BY_KEY, {"key": key}).first()
        return dict(row._mapping) if row is not None else None

    # -- integrity checks and cleanup previews (fsck, ``cleanup --dry-run``) -------------------
    # Maintenance queries: never on a request path, but still index-driven and batched.

    def iter_artifact_rows(self, conn: Connection, sandbox_id: str, after_row_id: int, limit: int) -> list[Row]:
        """One keyset batch of a sandbox's artifact rows (any state) with ``row_id > after_row_id``.

        Pass the last batch's last ``row_id`` to get the next one; an empty list ends the walk.
        """
        stmt = (
            select(artifacts)
            .where(artifacts.c.sandbox_id == sandbox_id, artifacts.c.row_id > after_row_id)
            .order_by(artifacts.c.row_id)
            .limit(limit)
        )
        return [dict(r._mapping) for r in conn.execute(stmt)]

    def artifact_ids_with_prefix(self, conn: Connection, sandbox_id: str, prefix: str, limit: int) -> list[str]:
        """Up to ``limit`` artifact ids of the sandbox that start with the hex ``prefix`` (for
        ``chuk-admin``'s short ids): a range on the unique index of ``artifact_id``."""
        stmt = (
            select(artifacts.c.artifact_id)
            .where(
                artifacts.c.artifact_id >= prefix,
                artifacts.c.artifact_id < prefix + "g",  # ids are lower-case hex: "g" sorts after them
                artifacts.c.sandbox_id == sandbox_id,
            )
            .order_by(artifacts.c.artifact_id)
            .limit(limit)
        )
        return [r[0] for r in conn.execute(stmt) if r[0].startswith(prefix)]

    def count_artifact_rows(self, conn: Connection, sandbox_id: str) -> int:
        return conn.execute(select(func.count()).where(artifacts.c.sandbox_id == sandbox_id)).scalar_one()

    def referenced_keys(self, conn: Connection, keys: Sequence[str], artifact_ids: Sequence[str]) -> set[str]:
        """Those of ``keys`` that an artifact row (in any state) or an upload in progress names.

        ``artifact_ids`` are the artifact ids the keys end with (an upload's key is its
        artifact's key, and ``uploads.artifact_id`` is indexed where ``uploads.key`` is not).
        """
        if not keys:
            return set()
        found = set(conn.execute(select(artifacts.c.key).where(artifacts.c.key.in_(list(keys)))).scalars())
        # Bytes of a write in progress (or of a crashed one, until cleanup) and staged updates.
        found.update(conn.execute(select(blob_intents.c.key).where(blob_intents.c.key.in_(list(keys)))).scalars())
        sandboxes = {k.split("/", 2)[1] for k in keys if k.count("/") >= 2}
        found.update(
            conn.execute(
                select(artifacts.c.pending_key).where(
                    artifacts.c.sandbox_id.in_(sorted(sandboxes)), artifacts.c.pending_key.in_(list(keys))
                )
            ).scalars()
        )
        if artifact_ids:
            found.update(
                conn.execute(select(uploads.c.key).where(uploads.c.artifact_id.in_(list(artifact_ids)))).scalars()
            )
        return found & set(keys)

    def existing_upload_ids(self, conn: Connection, upload_ids: Sequence[str]) -> set[str]:
        """Those of ``upload_ids`` that still have an upload row (whose parts are referenced)."""
        if not upload_ids:
            return set()
        stmt = select(uploads.c.upload_id).where(uploads.c.upload_id.in_(list(upload_ids)))
        return set(conn.execute(stmt).scalars())

    def count_sweepable_artifacts(self, conn: Connection, sandbox_id: str, now: float) -> tuple[int, int]:
        """(rows, bytes) a sweep at ``now`` would claim: expired rows and stale tombstones,
        exactly as ``expired_artifact_ids`` and ``mark_deleting`` select them."""
        a = artifacts
        stale = now - 300.0  # the tombstone age after which a sweep reclaims it (mark_deleting)
        total = (func.count(), func.coalesce(func.sum(a.c.bytes), 0))
        expired = conn.execute(
            select(*total).where(
                a.c.sandbox_id == sandbox_id,
                a.c.expires_at <= now,
                or_(a.c.state == "committed", a.c.updated_at < stale),
            )
        ).one()
        tombstones = conn.execute(
            select(*total).where(
                a.c.sandbox_id == sandbox_id,
                a.c.state == "deleting",
                a.c.updated_at < stale,
                or_(a.c.expires_at.is_(None), a.c.expires_at > now),
            )
        ).one()
        return expired[0] + tombstones[0], int(expired[1]) + int(tombstones[1])

    def count_session_artifacts(
        self, conn: Connection, sandbox_id: str, session_ids: Sequence[str], now: float
    ) -> tuple[int, int]:
        """(rows, bytes) of live session-scoped artifacts of ``session_ids``: what goes with
        those sessions beyond ``count_sweepable_artifacts``."""
        if not session_ids:
            return 0, 0
        a = artifacts
        n, b = conn.execute(
            select(func.count(), func.coalesce(func.sum(a.c.bytes), 0)).where(
                a.c.sandbox_id == sandbox_id,
                a.c.session_id.in_(list(session_ids)),
                a.c.scope == "session",
                a.c.state == "committed",
                or_(a.c.expires_at.is_(None), a.c.expires_at > now),
            )
        ).one()
        return n, int(b)

    def count_expired_uploads(self, conn: Connection, sandbox_id: str, now: float) -> int:
        return conn.execute(
            select(func.count()).where(uploads.c.sandbox_id == sandbox_id, uploads.c.expires_at <= now)
        ).scalar_one()

    # -- crash safety: write intents and staged updates ---------------------------------------
    # Bytes are written before the row that names them. A key is recorded here first and the
    # record is removed in the transaction that inserts the row, so whatever a killed writer
    # left behind is listed here (or, for update_file, in artifacts.pending_key) for cleanup.

    def add_intents(self, conn: Connection | Tx, sandbox_id: str, keys: Sequence[str], now: float) -> None:
        entries = [{"key": k, "sandbox_id": sandbox_id, "created_at": now} for k in keys]
        if isinstance(conn, Tx):
            conn.execute_many(_INSERT_INTENT, entries)
        else:
            conn.execute(_INSERT_INTENT, entries)

    def claim_intents(self, conn: Connection | Tx, keys: Sequence[str]) -> int:
        """Remove intents; how many were still there (a writer that finds fewer than it made
        was given up by cleanup and must not commit)."""
        if not keys:
            return 0
        if type(conn) is Tx or len(keys) == 1:
            return sum(_rowcount(conn, _CLAIM_INTENT, {"key": k}) for k in keys)
        return int(conn.execute(_CLAIM_INTENTS, {"keys": list(keys)}).rowcount)  # type: ignore[union-attr]

    def stale_intents(self, conn: Connection, sandbox_id: str, before: float, limit: int) -> list[str]:
        stmt = (
            select(blob_intents.c.key)
            .where(blob_intents.c.sandbox_id == sandbox_id, blob_intents.c.created_at < before)
            .order_by(blob_intents.c.created_at)
            .limit(limit)
        )
        return list(conn.execute(stmt).scalars())

    def stale_pending(self, conn: Connection, sandbox_id: str, before: float, limit: int) -> list[Row]:
        """Rows whose committed bytes still sit at a staging key (``pending_key``)."""
        stmt = (
            select(artifacts)
            .where(
                artifacts.c.sandbox_id == sandbox_id,
                artifacts.c.pending_key.is_not(None),
                artifacts.c.updated_at < before,
            )
            .limit(limit)
        )
        return [dict(r._mapping) for r in conn.execute(stmt)]

    def clear_pending(self, conn: Connection, row_id: int, pending_key: str) -> bool:
        """Forget ``pending_key`` once its bytes are at the row's key (if it is still the row's)."""
        result = conn.execute(
            update(artifacts)
            .where(artifacts.c.row_id == row_id, artifacts.c.pending_key == pending_key)
            .values(pending_key=None)
        )
        return result.rowcount == 1

    # -- quotas -----------------------------------------------------------------------------
    # quota_usage holds, per sandbox, the bytes and count of each owner's rows and of all rows
    # (owner ""). It changes in the transactions that insert, resize and delete rows; a charge
    # that would pass a limit changes nothing and raises, so concurrent writers cannot overshoot.

    def charge(
        self,
        conn: Connection | Tx,
        sandbox_id: str,
        owner_id: str | None,
        nbytes: int,
        count: int,
        limits: Any = None,
    ) -> None:
        """Add ``nbytes``/``count`` to the owner's and the sandbox's usage, within ``limits``
        (an object with ``user_bytes``, ``user_count``, ``sandbox_bytes``, ``sandbox_count``,
        each ``None`` for no limit); ``QuotaExceededError`` if that would pass one."""
        targets = [("", "sandbox")]
        if owner_id is not None:
            # Both rows in one statement: on SQLite, whose write transactions run one at a time.
            # (PostgreSQL takes row locks owner first, then sandbox, so that writers never deadlock.)
            if self.is_sqlite and (limits is None or not limits.enabled):
                both = {"u_sandbox": sandbox_id, "u_owner": owner_id, "u_bytes": nbytes, "u_count": count}
                changed = _rowcount(conn, _ADD_USAGE_BOTH, both)
                if changed == 2:
                    return
                # Usage rows are never deleted, and an owner's row is made in the transaction
                # that makes the sandbox's if it is missing: one row changed is the sandbox's.
                if changed == 1:
                    targets = []
            targets.insert(0, (owner_id, "user"))
        for owner, kind in targets:
            max_bytes = getattr(limits, f"{kind}_bytes", None) if nbytes > 0 else None
            max_count = getattr(limits, f"{kind}_count", None) if count > 0 else None
            if not self._add_usage(conn, sandbox_id, owner, nbytes, count, max_bytes, max_count):
                used_bytes, used_count = self.usage(conn, sandbox_id, owner)
                who = f"user {owner_id!r}" if kind == "user" else f"sandbox {sandbox_id!r}"
                if max_bytes is not None and used_bytes + nbytes > max_bytes:
                    what = f"{used_bytes} of {max_bytes} bytes used, {nbytes} more requested"
                else:
                    what = f"{used_count} of {max_count} artifacts stored"
                raise QuotaExceededError(f"quota exceeded for {who}: {what}")

    def _add_usage(
        self,
        conn: Connection | Tx,
        sandbox_id: str,
        owner: str,
        nbytes: int,
        count: int,
        max_bytes: int | None,
        max_count: int | None,
    ) -> bool:
        stmt = _ADD_USAGE[(max_bytes is not None, max_count is not None)]
        params = {
            "u_sandbox": sandbox_id,
            "u_owner": owner,
            "u_bytes": nbytes,
            "u_count": count,
            "u_max_bytes": max_bytes,
            "u_max_count": max_count,
        }
        if _rowcount(conn, stmt, params) == 1:
            return True
        # No row changed: either a limit refused, or the owner has no usage row yet (or had none
        # when the UPDATE's snapshot was taken: a concurrent first write may have made it since).
        # Make sure the row exists - the INSERT waits for a concurrent creator to commit - and
        # ask again; a limit that refused the first time refuses again.
        values = {"sandbox_id": sandbox_id, "owner_id": owner, "bytes": 0, "count": 0}
        _rowcount(conn, self._ensure_usage_row, values)
        return _rowcount(conn, stmt, params) == 1

    def usage(self, conn: Connection | Tx, sandbox_id: str, owner_id: str) -> tuple[int, int]:
        """``(bytes, count)`` of an owner's rows (``""``: the whole sandbox)."""
        row = _first(conn, _GET_USAGE, {"sandbox_id": sandbox_id, "owner_id": owner_id})
        return (int(row["bytes"]), int(row["count"])) if row is not None else (0, 0)

    def _insert_ignore(self, table: Any, keys: list[str]) -> Any:
        """INSERT … ON CONFLICT DO NOTHING on the catalog's dialect."""
        if self.dialect == "postgresql":
            from sqlalchemy.dialects import postgresql

            return postgresql.insert(table).on_conflict_do_nothing(index_elements=keys)
        from sqlalchemy.dialects import sqlite

        return sqlite.insert(table).on_conflict_do_nothing(index_elements=keys)

    # -- share links --------------------------------------------------------------------------

    def insert_share(self, values: Row) -> None:
        """Insert a share row (``IntegrityError`` if its artifact is gone meanwhile)."""
        with self.tx() as tx:
            tx.execute(_INSERT_SHARE, values)

    def share(self, share_id: str) -> Row | None:
        return self.fetch_one(_GET_SHARE, {"share_id": share_id})

    def share_by_token(self, token_hash: str) -> Row | None:
        return self.fetch_one(_GET_SHARE_BY_TOKEN, {"token_hash": token_hash})

    def claim_share(self, share_id: str, now: float, max_failures: int) -> int | None:
        """Count one download if the link is live and under its limit at ``now``: the link's
        downloads with this one, or ``None`` if it was not counted."""
        with self.tx() as tx:
            row = tx.first(_CLAIM_SHARE, {"share_id": share_id, "now": now, "max_failures": max_failures})
        return None if row is None else int(row["downloads"])

    def unclaim_share(self, share_id: str) -> None:
        """Give back a download whose bytes could not be served."""
        with self.tx() as tx:
            tx.execute(_UNCLAIM_SHARE, {"share_id": share_id})

    def fail_share_password(self, share_id: str, max_failures: int) -> bool:
        """Count a wrong password; ``False`` once ``max_failures`` have been counted."""
        with self.tx() as tx:
            return tx.execute(_FAIL_SHARE_PASSWORD, {"share_id": share_id, "max_failures": max_failures}) == 1

    def revoke_share(self, share_id: str, now: float) -> bool:
        """Revoke a link; ``False`` if it was revoked already (or is gone)."""
        with self.tx() as tx:
            return tx.execute(_REVOKE_SHARE, {"share_id": share_id, "now": now}) == 1

    def find_shares(
        self,
        sandbox_id: str,
        *,
        created_by: str | None,
        created_session: str | None,
        admin: bool,
        artifact_id: str | None,
        live_at: float | None,
        limit: int,
        reader_session: str | None = None,
    ) -> list[Row]:
        """Links of a sandbox, newest first: an admin's are all of them; a user's those the
        user created; a session's (without a user) those created in it. A non-admin sees the
        links of a session-scoped artifact only from that session (``reader_session``), as it
        sees the artifact. ``artifact_id``: only that artifact's; ``live_at``: only those not
        revoked, expired or used up then."""
        c = shares.c
        conds: list[Any] = [c.sandbox_id == sandbox_id]
        stmt = select(shares)
        if not admin:
            if created_by is not None:
                conds.append(c.created_by == created_by)
            else:
                conds += [c.created_by.is_(None), c.created_session == created_session]
            a = artifacts.c
            stmt = stmt.join(artifacts, a.artifact_id == c.artifact_id)
            conds.append(or_(a.scope != "session", a.session_id == reader_session))
        if artifact_id is not None:
            conds.append(c.artifact_id == artifact_id)
        if live_at is not None:
            conds += [
                c.revoked_at.is_(None),
                c.expires_at > live_at,
                or_(c.max_downloads.is_(None), c.downloads < c.max_downloads),
            ]
        stmt = stmt.where(*conds).order_by(c.created_at.desc(), c.share_id).limit(limit)
        with self.read() as conn:
            return [dict(r._mapping) for r in conn.execute(stmt)]

    def delete_expired_shares(self, conn: Connection, sandbox_id: str, before: float) -> int:
        """Remove the links of a sandbox that expired before ``before`` (cleanup)."""
        stmt = delete(shares).where(shares.c.sandbox_id == sandbox_id, shares.c.expires_at <= before)
        return int(conn.execute(stmt).rowcount)

    # -- small persisted settings -----------------------------------------------------------

    def get_info(self, conn: Connection, name: str) -> str | None:
        return conn.execute(select(catalog_info.c.value).where(catalog_info.c.name == name)).scalar()

    def set_info_if_absent(self, conn: Connection, name: str, value: str) -> str:
        """Store ``value`` under ``name`` unless one is there; return the stored value."""
        self.lock(conn, f"catalog_info:{name}")
        existing = self.get_info(conn, name)
        if existing is not None:
            return existing
        conn.execute(insert(catalog_info).values(name=name, value=value))
        return value
