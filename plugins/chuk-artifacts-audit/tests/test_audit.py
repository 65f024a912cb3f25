"""The audit trail: what is recorded, where, that it only grows, and ``chuk-admin audit``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy
from chuk_artifacts_audit import JsonlSink, parse_since
from chuk_artifacts_audit.sinks import TABLE_NAME
from click.testing import CliRunner

from chuk_artifacts import AccessDeniedError, ArtifactStore, ProviderError
from chuk_artifacts.plugins import ensure_plugins_loaded
from chuk_artifacts.testing import BackendConformance


def admin(*args: str) -> Any:
    from chuk_artifacts.cli import cli

    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def activity(store: ArtifactStore, clock: Any) -> dict[str, str]:
    """A little of everything: stores, a denial, an update, a delete, a session, an expiry."""
    doc = store.store(b"report", mime="text/plain", user_id="alice", scope="user", filename="r.txt")
    with pytest.raises(AccessDeniedError):
        store.retrieve(doc, user_id="bob")
    store.update_metadata(doc, summary="final", user_id="alice")
    tmp = store.store(b"tmp", mime="text/plain", user_id="alice", ttl=60)
    gone = store.store(b"gone", mime="text/plain", user_id="bob")
    store.delete(gone, user_id="bob")
    sid = store.create_session(user_id="carol")
    store.delete_session(sid, user_id="carol")
    clock.advance(61)
    store.cleanup_expired_sessions()
    return {"doc": doc, "tmp": tmp, "gone": gone, "sid": sid}


# -- discovery -------------------------------------------------------------------------------


def test_the_plugin_is_found_through_its_entry_point() -> None:
    (ep,) = [ep for ep in entry_points(group="chuk_artifacts") if ep.name == "audit"]
    assert ep.value == "chuk_artifacts_audit.plugin" and ep.dist.name == "chuk-artifacts-audit"
    assert dict(ensure_plugins_loaded().list_name_plugin())["audit"].__name__ == ep.value


def test_nothing_is_recorded_unless_configured(tmp_path: Path) -> None:
    with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path)) as store:
        store.store(b"x", mime="text/plain", user_id="alice")
        with store.catalog.read() as conn:
            assert not sqlalchemy.inspect(conn).has_table(TABLE_NAME)


# -- JSON lines ------------------------------------------------------------------------------


def test_jsonl_records_who_what_when_which_and_the_outcome(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Any
) -> None:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("CHUK_AUDIT_LOG", f"jsonl:{log}")
    with ArtifactStore() as store:
        ids = activity(store, clock)
    entries = lines(log)
    summary = [(e["action"], e["outcome"], e["user_id"], e["artifact_id"]) for e in entries]
    assert ("stored", "allowed", "alice", ids["doc"]) in summary
    assert ("retrieve", "denied", "bob", ids["doc"]) in summary
    assert ("updated", "allowed", "alice", ids["doc"]) in summary
    assert ("deleted", "allowed", "bob", ids["gone"]) in summary
    assert ("expired", "allowed", None, ids["tmp"]) in summary
    sessions = [(e["action"], e["session_id"]) for e in entries if e["action"].startswith("session_")]
    assert ("session_created", ids["sid"]) in sessions and ("session_deleted", ids["sid"]) in sessions
    denied = next(e for e in entries if e["outcome"] == "denied")
    assert "access denied" in denied["detail"]["reason"]
    stored = next(e for e in entries if e["action"] == "stored")
    assert stored["detail"]["filename"] == "r.txt" and stored["detail"]["bytes"] == 6
    assert stored["sandbox_id"] == "default" and stored["time"].endswith("Z")
    assert [e["ts"] for e in entries] == sorted(e["ts"] for e in entries)


def test_share_links_are_recorded_without_their_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("CHUK_AUDIT_LOG", f"jsonl:{log}")
    with ArtifactStore() as store:
        doc = store.store(b"report", mime="text/plain", user_id="alice", scope="user")
        link = store.share(doc, max_downloads=2, password="s3cret", user_id="alice")
        token = link.url.rsplit("/", 1)[1]
        b"".join(store.open_share(token, password="s3cret").download(0, 6, 1024).chunks or [])
        store.revoke_share(link.share_id, user_id="alice")
    shares = [e for e in lines(log) if e["action"].startswith("share_")]
    assert [(e["action"], e["user_id"], e["artifact_id"]) for e in shares] == [
        ("share_created", "alice", doc),
        ("share_used", None, doc),
        ("share_revoked", "alice", doc),
    ]
    assert [e["detail"]["downloads"] for e in shares] == [0, 1, 1]
    assert all(e["detail"]["share_id"] == link.share_id and e["detail"]["has_password"] for e in shares)
    assert token not in log.read_text(encoding="utf-8") and "s3cret" not in log.read_text(encoding="utf-8")


def test_jsonl_only_appends(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("CHUK_AUDIT_LOG", f"jsonl:{log}")
    with ArtifactStore() as store:
        store.store(b"1", mime="text/plain", user_id="alice")
    first = log.read_bytes()
    with ArtifactStore() as store:
        store.store(b"2", mime="text/plain", user_id="alice")
    assert log.read_bytes().startswith(first)
    assert len(lines(log)) == 2 * len(first.splitlines())


def test_jsonl_lines_from_many_threads_never_interleave(tmp_path: Path) -> None:
    import threading

    sink = JsonlSink(tmp_path / "a.jsonl")
    threads = [
        threading.Thread(target=lambda i=i: [sink.record({"n": i, "pad": "x" * 2000}) for _ in range(50)])
        for i in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(lines(tmp_path / "a.jsonl")) == 400


# -- the catalog -----------------------------------------------------------------------------


def test_catalog_sink_writes_its_own_append_only_table(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Any
) -> None:
    monkeypatch.setenv("CHUK_AUDIT_LOG", "catalog")
    with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path)) as store:
        ids = activity(store, clock)
        with store.catalog.read() as conn:
            actions = [r[0] for r in conn.exec_driver_sql(f"SELECT action FROM {TABLE_NAME} ORDER BY id")]
        assert "stored" in actions and "retrieve" in actions and "expired" in actions
        for statement in (f"UPDATE {TABLE_NAME} SET action = 'x'", f"DELETE FROM {TABLE_NAME}"):
            with pytest.raises((sqlalchemy.exc.DatabaseError, ProviderError), match="append-only"):
                with store.catalog.write() as conn:
                    conn.exec_driver_sql(statement)
        assert store.validate_configuration()["catalog"]["status"] == "ok"  # alembic chain untouched
    out = admin("audit", "--provider", "filesystem", "--root", str(tmp_path), "--artifact", ids["doc"], "--json")
    assert [json.loads(line)["action"] for line in out.output.splitlines()] == ["stored", "retrieve", "updated"]


def test_catalog_sink_on_postgresql(postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHUK_AUDIT_LOG", "catalog")
    with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path), catalog_url=postgres_url) as store:
        aid = store.store(b"x", mime="text/plain", user_id="alice")
        with pytest.raises((sqlalchemy.exc.DatabaseError, ProviderError), match="append-only"):
            with store.catalog.write() as conn:
                conn.exec_driver_sql(f"DELETE FROM {TABLE_NAME}")
    out = admin("audit", "--catalog", postgres_url, "--user", "alice", "--json")
    assert [(json.loads(x)["action"], json.loads(x)["artifact_id"]) for x in out.output.splitlines()] == [
        ("session_created", None),
        ("stored", aid),
    ]


# -- chuk-admin audit ------------------------------------------------------------------------


@pytest.fixture
def trail(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Any) -> Iterator[tuple[Path, dict[str, str]]]:
    log = tmp_path / "audit.jsonl"
    monkeypatch.setenv("CHUK_AUDIT_LOG", f"jsonl:{log}")
    with ArtifactStore() as store:
        ids = activity(store, clock)
    yield log, ids


def test_audit_command_filters_by_user_action_and_outcome(trail: tuple[Path, dict[str, str]]) -> None:
    log, ids = trail
    out = admin("audit", "--log", f"jsonl:{log}", "--user", "bob", "--json").output
    assert {json.loads(x)["action"] for x in out.splitlines()} == {"retrieve", "stored", "deleted", "session_created"}
    denied = admin("audit", "--log", f"jsonl:{log}", "--outcome", "denied").output.splitlines()
    assert len(denied) == 1 and "retrieve" in denied[0] and "user=bob" in denied[0] and ids["doc"] in denied[0]
    deletes = admin("audit", "--log", f"jsonl:{log}", "--action", "deleted", "--json").output.splitlines()
    assert [json.loads(x)["artifact_id"] for x in deletes] == [ids["gone"]]


def test_audit_command_since_and_limit(trail: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch) -> None:
    log, _ = trail
    every = admin("audit", "--log", f"jsonl:{log}", "--limit", "0", "--json").output.splitlines()
    assert len(admin("audit", "--log", f"jsonl:{log}", "--limit", "2").output.splitlines()) == 2
    recent = admin("audit", "--log", f"jsonl:{log}", "--since", "30s", "--json").output.splitlines()
    assert 0 < len(recent) < len(every)  # the clock moved 61 s before the cleanup
    assert {json.loads(x)["action"] for x in recent} <= {"expired", "session_expired"}
    assert "--since" in admin("audit", "--log", f"jsonl:{log}", "--since", "yesterday-ish").output


def test_audit_command_reads_the_environment(
    trail: tuple[Path, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    log, _ = trail
    monkeypatch.setenv("CHUK_AUDIT_LOG", f"jsonl:{log}")
    assert len(admin("audit", "--limit", "0").output.splitlines()) == len(lines(log))


def test_audit_command_is_documented_in_help() -> None:
    out = admin("--help").output
    assert "audit" in out
    help_text = admin("audit", "--help").output
    for option in ("--user", "--artifact", "--action", "--since", "--json", "--log"):
        assert option in help_text


def test_parse_since() -> None:
    assert parse_since("2h", now=10_000.0) == 10_000.0 - 7200
    assert parse_since("1970-01-01T00:01:00Z") == 60.0
    assert parse_since("1970-01-01T00:01:00") == 60.0
    with pytest.raises(ValueError):
        parse_since("soon")


# -- the conformance kit, with the audit trail on ---------------------------------------------


class TestStoresWithTheAuditTrail(BackendConformance):
    """Recording every event must not change what a store does."""

    @pytest.fixture
    def store(self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ArtifactStore]:
        monkeypatch.setenv("CHUK_AUDIT_LOG", "catalog")
        with ArtifactStore(storage_provider="filesystem", fs_root=str(tmp_path / "fs")) as store:
            yield store
