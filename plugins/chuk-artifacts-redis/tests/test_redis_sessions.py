"""Redis sessions: expiry in Redis itself, sharing between processes, and the store end to end."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from chuk_artifacts_redis import RedisSessions

from chuk_artifacts import AccessDeniedError, ArtifactNotFoundError, ArtifactStore, ProviderError
from chuk_artifacts.plugins import ensure_plugins_loaded, known_session_providers


@pytest.fixture
def sessions(redis_url: str) -> Any:
    provider = RedisSessions.from_url(redis_url, "box", 3600.0)
    yield provider
    provider.close()


# -- discovery -----------------------------------------------------------------------------------


def test_the_provider_is_found_through_its_entry_point() -> None:
    names = dict(ensure_plugins_loaded().list_name_plugin())
    assert names["redis"].__name__ == "chuk_artifacts_redis.plugin"
    assert "redis" in known_session_providers()


def test_session_provider_redis_gives_a_store_redis_sessions(redis_url: str, redis_client: Any) -> None:
    with ArtifactStore(session_provider="redis", session_redis_url=redis_url, sandbox_id="box") as store:
        assert isinstance(store.sessions, RedisSessions)
        aid = store.store(b"x", mime="text/plain", user_id="alice")
        meta = store.metadata(aid)
        assert meta.session_provider == "redis"
        assert redis_client.exists(store.sessions.key(meta.session_id)) == 1
        with store.catalog.read() as conn:  # nothing in the catalog's own sessions table
            assert conn.exec_driver_sql("SELECT count(*) FROM sessions").scalar() == 0
        assert store.validate_configuration()["session"] == {"status": "ok", "provider": "redis"}


def test_the_environment_selects_redis(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SESSION_PROVIDER", "redis")
    monkeypatch.setenv("SESSION_REDIS_URL", redis_url)
    with ArtifactStore() as store:
        assert store.session_provider == "redis"
        assert store.get_stats()["sessions"]["active"] == 0


# -- expiry happens in Redis -----------------------------------------------------------------------


def test_a_session_key_carries_the_session_expiry(sessions: RedisSessions, redis_client: Any) -> None:
    row = sessions.create("alice", ttl_seconds=120.0)
    key = sessions.key(row["session_id"])
    assert 119_000 < redis_client.pttl(key) <= 120_000
    assert abs(redis_client.pexpiretime(key) - row["expires_at"] * 1000) <= 1
    user_index = sessions.user_key("alice")
    assert 119_000 < redis_client.pttl(user_index) <= 120_000


def test_redis_removes_an_expired_session_by_itself(sessions: RedisSessions, redis_client: Any) -> None:
    row = sessions.create("alice", ttl_seconds=0.3)
    key = sessions.key(row["session_id"])
    assert redis_client.exists(key) == 1
    time.sleep(0.5)
    assert redis_client.exists(key) == 0  # no sweep ran: Redis expired it
    ghost = sessions.get(row["session_id"])  # answered as expired (user forgotten) until swept
    assert ghost is not None and ghost["expires_at"] <= time.time() and ghost["user_id"] is None
    assert sessions.delete_expired([row["session_id"]], time.time()) == [row["session_id"]]
    assert sessions.get(row["session_id"]) is None
    assert sessions.for_user("alice")["session_id"] != row["session_id"]


def test_sliding_a_session_moves_its_key_expiry(sessions: RedisSessions, redis_client: Any, clock: Any) -> None:
    row = sessions.create("alice", ttl_seconds=100.0)
    clock.advance(60)
    slid = sessions.touch(row, clock.now)
    assert redis_client.pexpiretime(sessions.key(row["session_id"])) == pytest.approx(slid["expires_at"] * 1000, abs=1)
    assert redis_client.zscore(sessions.expiry_key, row["session_id"]) == pytest.approx(slid["expires_at"])


def test_extend_session_ttl_moves_the_key_expiry(redis_url: str, redis_client: Any) -> None:
    with ArtifactStore(session_provider="redis", session_redis_url=redis_url) as store:
        sid = store.create_session(user_id="alice", ttl_hours=1)
        key = store.sessions.key(sid)
        assert redis_client.pttl(key) <= 3_600_000
        store.extend_session_ttl(sid, 2)
        assert 3 * 3_600_000 - 5_000 < redis_client.pttl(key) <= 3 * 3_600_000


def test_cleanup_removes_artifacts_of_sessions_redis_already_expired(redis_url: str, redis_client: Any) -> None:
    with ArtifactStore(session_provider="redis", session_redis_url=redis_url) as store:
        sid = store.create_session(user_id="alice")
        doomed = store.store(b"ephemeral", mime="text/plain", session_id=sid, ttl=None)
        store.sessions.update(sid, {"expires_at": time.time() + 0.3})  # then it is not used again
        time.sleep(0.5)
        assert redis_client.exists(store.sessions.key(sid)) == 0
        result = store.cleanup_expired_sessions()
        assert (result.sessions, result.artifacts) == (1, 1)
        assert store.exists(doomed) is False
        assert redis_client.zscore(store.sessions.expiry_key, sid) is None


# -- several processes ---------------------------------------------------------------------------

_WORKER = textwrap.dedent(
    """
    import sys, time
    from chuk_artifacts import ArtifactStore
    root, url, action, user, start = sys.argv[1:6]
    with ArtifactStore(storage_provider="filesystem", fs_root=root, session_provider="redis",
                       session_redis_url=url) as store:
        while time.time() < float(start):
            time.sleep(0.001)
        if action == "store":
            aid = store.store(b"from " + str(len(sys.argv)).encode(), mime="text/plain", user_id=user)
            print(store.metadata(aid).session_id)
        elif action == "validate":
            print(store.validate_session(sys.argv[6]))
        elif action == "delete":
            print(store.delete_session(sys.argv[6]))
    """
)


def _run(root: Path, url: str, *args: str, start: float = 0.0) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ARTIFACT_", "SESSION_"))}
    return subprocess.Popen(
        [sys.executable, "-c", _WORKER, str(root), url, args[0], args[1], str(start), *args[2:]],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _out(proc: subprocess.Popen) -> str:
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err
    return out.strip()


def test_two_processes_share_sessions(tmp_path: Path, redis_url: str) -> None:
    first = _out(_run(tmp_path, redis_url, "store", "alice"))
    second = _out(_run(tmp_path, redis_url, "store", "alice"))
    assert first.startswith("sess-") and second == first
    assert _out(_run(tmp_path, redis_url, "validate", "alice", first)) == "True"
    assert _out(_run(tmp_path, redis_url, "delete", "alice", first)) == "True"
    assert _out(_run(tmp_path, redis_url, "validate", "alice", first)) == "False"
    with ArtifactStore(
        storage_provider="filesystem", fs_root=str(tmp_path), session_provider="redis", session_redis_url=redis_url
    ) as store:
        assert store.validate_session(first) is False
        third = store.metadata(store.store(b"x", mime="text/plain", user_id="alice")).session_id
    assert third != first


def test_processes_racing_for_a_users_session_get_one(tmp_path: Path, redis_url: str) -> None:
    start = time.time() + 3.0  # every process waits for the same instant, then asks at once
    procs = [_run(tmp_path, redis_url, "store", "dave", start=start) for _ in range(6)]
    sessions = {_out(p) for p in procs}
    assert len(sessions) == 1
    with ArtifactStore(
        storage_provider="filesystem", fs_root=str(tmp_path), session_provider="redis", session_redis_url=redis_url
    ) as store:
        assert store.get_stats()["sessions"]["active"] == 1
        assert len(store.search(user_id="dave")) == 6


# -- configuration and failures ------------------------------------------------------------------


def test_key_prefix_on_the_url_namespaces_keys(redis_url: str, key_prefix: str, redis_client: Any) -> None:
    provider = RedisSessions.from_url(redis_url, "box", 60.0)
    try:
        sid = provider.create("alice")["session_id"]
        assert provider.key(sid) == f"{key_prefix}:{{box}}:s:{sid}"
        assert redis_client.exists(provider.key(sid)) == 1
    finally:
        provider.close()


def test_an_unreachable_server_is_a_provider_error_without_the_password() -> None:
    provider = RedisSessions.from_url("redis://:s3cret@127.0.0.1:1/0", "box", 60.0)
    try:
        with pytest.raises(ProviderError) as info:
            provider.get("sess-x")
        assert "127.0.0.1:1" in str(info.value) and "s3cret" not in str(info.value)
    finally:
        provider.close()


def test_a_malformed_url_is_a_provider_error() -> None:
    with pytest.raises(ProviderError, match="not a Redis URL"):
        RedisSessions.from_url("http://example.invalid/", "box", 60.0)


def test_a_session_redis_expired_is_no_key_to_its_artifacts(redis_url: str) -> None:
    """Redis drops the session by itself; until the sweep, nobody naming its id — nor a new
    session created under it — reaches what it held (issue 20, item 3)."""
    with ArtifactStore(session_provider="redis", session_redis_url=redis_url, sandbox_id="box3") as store:
        owned = store.create_session(user_id="alice", ttl_hours=0.3 / 3600)
        anonymous = store.create_session(ttl_hours=0.3 / 3600)
        alices = store.store(b"alice's", mime="text/plain", session_id=owned, ttl=None)
        nobodys = store.store(b"nobody's", mime="text/plain", session_id=anonymous, ttl=None)
        time.sleep(0.5)
        for sid, aid in ((owned, alices), (anonymous, nobodys)):
            with pytest.raises(AccessDeniedError):
                store.read_file(aid, session_id=sid, user_id="bob")
            with pytest.raises(AccessDeniedError):
                store.read_file(aid, session_id=sid)
            mine = store.store(b"bob's", mime="text/plain", session_id=sid, user_id="bob")
            assert {m.artifact_id for m in store.list_by_session(sid)} == {mine}
            with pytest.raises(ArtifactNotFoundError):  # the replaced session's artifacts went first
                store.metadata(aid)
