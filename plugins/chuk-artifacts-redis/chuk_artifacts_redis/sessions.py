"""``RedisSessions``: the sessions of one sandbox in Redis, with native expiry.

Each session is a hash whose key expires with the session (``PEXPIREAT``). A sorted set per user
indexes the user's sessions by expiry, so ``for_user`` finds the live one in one script; a sorted
set per sandbox lists every session by expiry for cleanup and counting. Every change runs as one
Lua script, so concurrent processes never create two sessions for one user or see half a session.
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import redis

from chuk_artifacts.errors import ProviderError, SessionError
from chuk_artifacts.grid import validate_id
from chuk_artifacts.sessions import SessionRules, new_session_id

__all__ = ["DEFAULT_PREFIX", "DEFAULT_URL", "RedisSessions"]

DEFAULT_URL = "redis://localhost:6379/0"
DEFAULT_PREFIX = "chuk_artifacts"

Row = dict[str, Any]

# Helpers shared by the scripts. Keys are derived from ARGV[1], the sandbox's key tag
# ("prefix:{sandbox}"); the hash tag keeps every key of a sandbox in one cluster slot.
_LIB = """
local tag = ARGV[1]
local function skey(sid) return tag .. ':s:' .. sid end
local function ukey(uid) return tag .. ':u:' .. uid end
local ekey = tag .. ':expiry'
local function index_user(uid, sid, expires_at)
  local k = ukey(uid)
  redis.call('ZADD', k, expires_at, sid)
  local last = redis.call('ZRANGE', k, -1, -1, 'WITHSCORES')
  redis.call('PEXPIREAT', k, math.ceil(tonumber(last[2]) * 1000))
end
-- put(sid, uid, expires_at, first field index): write a whole session from ARGV[first..]
local function put(sid, uid, expires_at, first)
  local k = skey(sid)
  redis.call('DEL', k)
  redis.call('HSET', k, unpack(ARGV, first))
  redis.call('PEXPIREAT', k, math.ceil(tonumber(expires_at) * 1000))
  redis.call('ZADD', ekey, expires_at, sid)
  if uid ~= '' then index_user(uid, sid, expires_at) end
end
"""

# ARGV: tag, sid, uid, now, expires_at, field, value, ...  -> 1 created, 0 a live one exists
_CREATE = (
    _LIB
    + """
local sid, uid, now, expires_at = ARGV[2], ARGV[3], tonumber(ARGV[4]), ARGV[5]
local current = redis.call('HGET', skey(sid), 'expires_at')
if current and tonumber(current) > now then return 0 end
put(sid, uid, expires_at, 6)
return 1
"""
)

# ARGV: tag, uid, now, new sid, expires_at, field, value, ...  -> {created (0/1), sid}
_FOR_USER = (
    _LIB
    + """
local uid, now = ARGV[2], tonumber(ARGV[3])
local k = ukey(uid)
redis.call('ZREMRANGEBYSCORE', k, '-inf', now)
for _, sid in ipairs(redis.call('ZREVRANGE', k, 0, -1)) do
  local current = redis.call('HGET', skey(sid), 'expires_at')
  if current and tonumber(current) > now then return {0, sid} end
  redis.call('ZREM', k, sid)
end
put(ARGV[4], uid, ARGV[5], 6)
return {1, ARGV[4]}
"""
)

# ARGV: tag, sid, expires_at or '', field, value, ...  -> 1 updated, 0 unknown
_UPDATE = (
    _LIB
    + """
local sid, expires_at = ARGV[2], ARGV[3]
local k = skey(sid)
if redis.call('EXISTS', k) == 0 then return 0 end
if #ARGV >= 4 then redis.call('HSET', k, unpack(ARGV, 4)) end
if expires_at ~= '' then
  redis.call('PEXPIREAT', k, math.ceil(tonumber(expires_at) * 1000))
  redis.call('ZADD', ekey, expires_at, sid)
  local uid = redis.call('HGET', k, 'user_id')
  if uid then index_user(uid, sid, expires_at) end
end
return 1
"""
)

# ARGV: tag, now or '', sid, ...  -> the sids removed (with now: only those still expired)
_DELETE = (
    _LIB
    + """
local now = ARGV[2]
local removed = {}
for i = 3, #ARGV do
  local sid = ARGV[i]
  local score = redis.call('ZSCORE', ekey, sid)
  local k = skey(sid)
  if now == '' or (score and tonumber(score) <= tonumber(now)) then
    local uid = redis.call('HGET', k, 'user_id')
    local existed = redis.call('DEL', k)
    local indexed = redis.call('ZREM', ekey, sid)
    if uid then redis.call('ZREM', ukey(uid), sid) end
    if existed == 1 or (now ~= '' and indexed == 1) then table.insert(removed, sid) end
  end
end
return removed
"""
)


def _num(value: float) -> str:
    return repr(float(value))  # round-trips exactly, unlike Lua's cjson


@contextlib.contextmanager
def _redis_errors(url: str) -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        raise ProviderError(f"redis session provider at {url}: {type(exc).__name__}: {exc}") from exc


class RedisSessions(SessionRules):
    """Sessions of one sandbox in Redis (satisfies ``chuk_artifacts.sessions.SessionProvider``)."""

    name = "redis"

    def __init__(
        self,
        client: redis.Redis,
        sandbox_id: str,
        ttl_seconds: float,
        *,
        prefix: str = DEFAULT_PREFIX,
        safe_url: str = "redis",
    ) -> None:
        self.client = client
        self.sandbox_id = sandbox_id
        self.ttl = ttl_seconds
        self.tag = f"{prefix}:{{{sandbox_id}}}"
        self.safe_url = safe_url
        self._create = client.register_script(_CREATE)
        self._for_user = client.register_script(_FOR_USER)
        self._update = client.register_script(_UPDATE)
        self._delete = client.register_script(_DELETE)

    @classmethod
    def from_url(cls, url: str, sandbox_id: str, ttl_seconds: float) -> RedisSessions:
        """Connect (lazily) to ``url``; a ``key_prefix`` query parameter sets the key prefix."""
        parts = urlsplit(url)
        query = parse_qsl(parts.query, keep_blank_values=True)
        prefix = next((v for k, v in query if k == "key_prefix"), DEFAULT_PREFIX) or DEFAULT_PREFIX
        url = urlunsplit(parts._replace(query=urlencode([(k, v) for k, v in query if k != "key_prefix"])))
        host = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or "")
        safe = urlunsplit(parts._replace(netloc=host, query=""))  # no password in messages
        try:
            client = redis.Redis.from_url(url, decode_responses=True, health_check_interval=30)
        except ValueError as exc:
            raise ProviderError(f"SESSION_REDIS_URL is not a Redis URL: {exc}") from exc
        return cls(client, sandbox_id, ttl_seconds, prefix=prefix, safe_url=safe)

    # -- keys and rows --------------------------------------------------------------------

    def key(self, session_id: str) -> str:
        """The Redis key of a session's hash."""
        return f"{self.tag}:s:{session_id}"

    def user_key(self, user_id: str) -> str:
        """The Redis key of a user's session index."""
        return f"{self.tag}:u:{user_id}"

    @property
    def expiry_key(self) -> str:
        return f"{self.tag}:expiry"

    def _fields(self, row: Row) -> list[str]:
        fields = [
            "session_id",
            row["session_id"],
            "sandbox_id",
            self.sandbox_id,
            "created_at",
            _num(row["created_at"]),
            "last_accessed_at",
            _num(row["last_accessed_at"]),
            "expires_at",
            _num(row["expires_at"]),
            "ttl",
            _num(row["ttl"]),
            "meta",
            json.dumps(row["meta"] or {}, ensure_ascii=False),
        ]
        if row["user_id"] is not None:
            fields += ["user_id", row["user_id"]]
        return fields

    @staticmethod
    def _row(data: dict[str, str]) -> Row:
        return {
            "sandbox_id": data["sandbox_id"],
            "session_id": data["session_id"],
            "user_id": data.get("user_id"),
            "created_at": float(data["created_at"]),
            "last_accessed_at": float(data["last_accessed_at"]),
            "expires_at": float(data["expires_at"]),
            "ttl": float(data["ttl"]),
            "meta": json.loads(data["meta"]),
        }

    # -- the SessionProvider interface ------------------------------------------------------

    def get(self, session_id: str) -> Row | None:
        """The session, live or expired, or ``None``. Redis drops an expired session's hash by
        itself; until cleanup sweeps it, the expiry index still knows when it expired, and the
        session is answered as an expired row (its user forgotten), as the catalog provider
        answers: so a store replacing it removes what it held first, whatever Redis dropped."""
        with _redis_errors(self.safe_url):
            data = self.client.hgetall(self.key(session_id))
            if data:
                return self._row(data)
            expired_at = self.client.zscore(self.expiry_key, session_id)
        if expired_at is None:
            return None
        return {
            "sandbox_id": self.sandbox_id,
            "session_id": session_id,
            "user_id": None,
            "created_at": float(expired_at),
            "last_accessed_at": float(expired_at),
            "expires_at": min(float(expired_at), time.time()),
            "ttl": 0.0,
            "meta": {},
        }

    def create(
        self,
        user_id: str | None = None,
        *,
        session_id: str | None = None,
        ttl_seconds: float | None = None,
        meta: dict[str, Any] | None = None,
    ) -> Row:
        now = time.time()
        session_id = validate_id(session_id, "session_id") if session_id else new_session_id()
        row = self._new_row(session_id, user_id, now, ttl_seconds or self.ttl, meta)
        args = [self.tag, session_id, user_id or "", _num(now), _num(row["expires_at"]), *self._fields(row)]
        with _redis_errors(self.safe_url):
            created = self._create(args=args)
        if not created:
            raise SessionError(f"session {session_id!r} already exists")
        return {**row, "created": True}

    def for_user(self, user_id: str) -> Row:
        now = time.time()
        row = self._new_row(new_session_id(), user_id, now, self.ttl, None)
        args = [self.tag, user_id, _num(now), row["session_id"], _num(row["expires_at"]), *self._fields(row)]
        with _redis_errors(self.safe_url):
            created, session_id = self._for_user(args=args)
        if created:
            return {**row, "created": True}
        existing = self.get(session_id)
        if existing is None:  # deleted between the script and this read: ask again
            return self.for_user(user_id)
        return self.touch(existing, now)

    def update(self, session_id: str, values: Row) -> bool:
        fields: list[str] = []
        for name, value in values.items():
            if name == "meta":
                fields += ["meta", json.dumps(value or {}, ensure_ascii=False)]
            elif name in ("expires_at", "last_accessed_at"):
                fields += [name, _num(value)]
            else:
                raise ValueError(f"a session has no updatable field {name!r}")
        expires_at = _num(values["expires_at"]) if "expires_at" in values else ""
        with _redis_errors(self.safe_url):
            return bool(self._update(args=[self.tag, session_id, expires_at, *fields]))

    def delete(self, session_id: str) -> bool:
        with _redis_errors(self.safe_url):
            return bool(self._delete(args=[self.tag, "", session_id]))

    def expired(self, now: float, limit: int) -> list[str]:
        with _redis_errors(self.safe_url):
            return list(self.client.zrangebyscore(self.expiry_key, "-inf", _num(now), start=0, num=limit))

    def delete_expired(self, session_ids: list[str], now: float) -> list[str]:
        if not session_ids:
            return []
        with _redis_errors(self.safe_url):
            return list(self._delete(args=[self.tag, _num(now), *session_ids]))

    def count_live(self, now: float) -> int:
        with _redis_errors(self.safe_url):
            return int(self.client.zcount(self.expiry_key, f"({_num(now)}", "+inf"))

    def close(self) -> None:
        self.client.close()

    def __repr__(self) -> str:
        return f"<RedisSessions {self.safe_url} sandbox={self.sandbox_id!r}>"
