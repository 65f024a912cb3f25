"""Crash safety: writer processes killed with SIGKILL at chosen and at random instants.

After every kill, readers get exactly the bytes the catalog describes; after all of them, one
``cleanup`` leaves nothing for ``fsck`` to report, every committed artifact is intact, and every
interrupted operation either happened or did not (never half).
"""

from __future__ import annotations

import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

from chuk_artifacts import ArtifactStore, fsck
from chuk_artifacts.schema import artifacts, blob_intents

from crash_worker import USER, open_store, sha  # type: ignore[import-not-found]

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")

WORKER = Path(__file__).with_name("crash_worker.py")
POINTS = [
    "store-before-commit",
    "batch-before-commit",
    "stream-midway",
    "update-before-commit",
    "update-before-move",
    "update-before-clear",
    "copy-before-commit",
    "delete-after-tombstone",
    "delete-before-rows",
    "cleanup-midway",
]
RANDOM_ROUNDS = 8


#: How many words follow each journal word (crash_worker.py's ``say`` calls).
_ARGS = {
    "storing": 1,
    "stored": 2,
    "updating": 2,
    "updated": 2,
    "copying": 1,
    "copied": 2,
    "deleting": 1,
    "deleted": 1,
    "expiring": 1,
}


class Journal:
    """What the workers said they did, and so which outcomes each artifact may show."""

    def __init__(self) -> None:
        self.allowed: dict[str, set[str]] = {}  # artifact id -> sha256s it may hold
        self.may_be_gone: set[str] = set()
        self.unannounced: set[str] = set()  # sha256s an artifact with an unknown id may hold

    def read(self, lines: list[str]) -> None:
        in_flight: list[str] | None = None
        for line in lines:
            word, *args = line.split()
            assert len(args) == _ARGS.get(word, len(args)), f"malformed journal line {line!r}"
            if word == "storing":
                self.unannounced.add(args[0])
            elif word == "stored":
                self.allowed[args[0]] = {args[1]}
            elif word == "updating":
                in_flight = ["update", *args]
            elif word == "updated":
                self.allowed[args[0]] = {args[1]}
            elif word == "copying":
                in_flight = ["copy", *args]
                self.unannounced |= self.allowed.get(args[0], set())
            elif word == "copied":  # a copy of an artifact whose id was never announced: any
                self.allowed[args[1]] = set(self.allowed.get(args[0], self.unannounced))
            elif word == "deleting":
                in_flight = ["delete", *args]
            elif word == "deleted":
                self.allowed.pop(args[0], None)
            elif word == "expiring":
                self.may_be_gone.add(args[0])
                self.allowed[args[0]] = {sha(b"x" * 1000)}
            if word in ("updated", "copied", "deleted"):
                in_flight = None
        if in_flight is not None:  # the operation the kill interrupted: done or not done
            kind, aid, *rest = in_flight
            if kind == "update":
                self.allowed.get(aid, self.unannounced).add(rest[0])
            elif kind == "delete":
                self.may_be_gone.add(aid)


def run_worker(root: Path, provider: str, mode: str, arg: str, *, kill_after: float | None = None) -> list[str]:
    # stderr goes to a file, and stdout is read through one file object only: communicate()
    # after readline() would read the pipe past what readline() had already buffered, and lose
    # or cut journal lines.
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER), str(root), mode, arg, provider],
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            cwd=str(WORKER.parent),
        )
        assert proc.stdout is not None
        with proc.stdout:
            first = proc.stdout.readline()
            if first.strip() != "ready":
                proc.kill()
                proc.wait(timeout=60)
                errors.seek(0)
                pytest.fail(f"worker did not start: {first!r}\n{errors.read()}")
            if kill_after is not None:
                time.sleep(kill_after)
                proc.kill()
            out = proc.stdout.read()  # to EOF: the worker is dead or kills itself
        proc.wait(timeout=60)
        errors.seek(0)
        err = errors.read()
    assert proc.returncode == -signal.SIGKILL, f"worker was not killed ({proc.returncode}):\n{out}\n{err}"
    assert "survived" not in out, f"the crash point was never reached:\n{out}"
    return out.splitlines()


def all_rows(store: ArtifactStore) -> list[dict]:
    with store.catalog.read() as conn:
        return [dict(r._mapping) for r in conn.execute(artifacts.select())]


def check_reads(store: ArtifactStore, journal: Journal) -> None:
    """Every artifact reads back as bytes the journal allows (before any cleanup)."""
    rows = {r["artifact_id"]: r for r in all_rows(store) if r["state"] == "committed"}
    for aid, row in rows.items():
        expired = row["expires_at"] is not None and row["expires_at"] <= time.time()
        data = store._read_blob(row) if expired else store.retrieve(aid)
        assert sha(data) == row["sha256"], f"{aid}: bytes differ from the catalog"
        allowed = journal.allowed.get(aid, journal.unannounced)
        assert row["sha256"] in allowed, f"{aid}: holds bytes no operation wrote"
    for aid in journal.allowed:
        if aid not in rows:
            assert aid in journal.may_be_gone, f"{aid}: a committed artifact disappeared"


@pytest.fixture(params=["filesystem", "sqlite"])
def provider(request: pytest.FixtureRequest) -> str:
    """The byte backends the trials kill writers of: files, and bytes in the catalog's file."""
    return str(request.param)


@pytest.fixture
def root(tmp_path: Path, provider: str) -> Path:
    root = tmp_path / "store"
    with open_store(str(root), provider) as store:  # a few committed artifacts before any crash
        for n in range(4):
            store.store(bytes([n]) * 5000, mime="text/plain", scope="user", user_id=USER, ttl=None)
    return root


def test_writers_killed_anywhere_lose_nothing_and_cleanup_repairs_all(root: Path, provider: str, monkeypatch) -> None:
    journal = Journal()
    with open_store(str(root), provider) as store:
        for row in all_rows(store):
            journal.allowed[row["artifact_id"]] = {row["sha256"]}

    leftovers = set()
    for point in POINTS:
        journal.read(run_worker(root, provider, "point", point))
        with open_store(str(root), provider) as store:
            check_reads(store, journal)
            with store.catalog.read() as conn:
                if conn.execute(blob_intents.select()).first() is not None:
                    leftovers.add("intent")
            if any(r["pending_key"] for r in all_rows(store)):
                leftovers.add("pending")
            if any(r["state"] == "deleting" for r in all_rows(store)):
                leftovers.add("tombstone")
    # The crash points really left each kind of unfinished work behind.
    assert leftovers == {"intent", "pending", "tombstone"}

    rng = random.Random(1234)
    for n in range(RANDOM_ROUNDS):
        journal.read(run_worker(root, provider, "random", str(n), kill_after=rng.uniform(0.3, 1.5)))
        with open_store(str(root), provider) as store:
            check_reads(store, journal)

    # Later (past the upload window and the tombstone grace), one cleanup finishes everything.
    real_time = time.time
    monkeypatch.setattr(time, "time", lambda: real_time() + 3 * 86400)
    with open_store(str(root), provider) as store:
        before = fsck.check(store, verify=True)
        store.cleanup_expired_sessions()
        after = fsck.check(store, verify=True)
        assert after.ok, [p.to_dict() if hasattr(p, "to_dict") else p for p in after.problems]
        assert after.in_flight == 0
        rows = all_rows(store)
        assert all(r["state"] == "committed" and r["pending_key"] is None for r in rows)
        with store.catalog.read() as conn:
            assert conn.execute(blob_intents.select()).first() is None
        for aid in journal.may_be_gone - {r["artifact_id"] for r in rows}:
            journal.allowed.pop(aid, None)
        check_reads(store, journal)
        # Whatever fsck saw before the cleanup was only unfinished work, not damage.
        assert all(p.kind in ("stale-temp",) for p in before.problems), before.problems
