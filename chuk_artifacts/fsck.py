"""Integrity checks: does the catalog agree with the bytes? (``chuk-admin fsck`` formats this.)

``check(store)`` walks one sandbox twice, in bounded batches:

- **rows → blobs**: every artifact row's object must exist with the recorded size (and, with
  ``verify=True``, the recorded sha256, hashed as a stream). Problems: ``missing``,
  ``size-mismatch``, ``sha256-mismatch``.
- **blobs → rows**: every object under ``grid/<sandbox>/`` must be named by an artifact row (in
  any state: a tombstone's bytes belong to the delete in progress) or by an upload in progress;
  every part under ``_uploads/<sandbox>/<upload>/`` must belong to an upload that still exists.
  Problems: ``orphan``, ``orphan-part``, and ``stale-temp`` for an interrupted write's temp file
  (``.tmp-*``) older than ``grace``; younger temp files are writes in progress and only counted.
  Nothing else under the root is looked at (``_chuk/`` health probes, ``_quarantine/``, other
  sandboxes, the SQLite catalog file).

The store may be in use meanwhile: a finding is re-checked before it is reported, so a write or
delete that was in flight is not reported as damage.

Repairs never lose data that could still be read:

- ``repair=True`` moves orphans and stale temp files to ``_quarantine/<UTC timestamp>/<key>``,
  only when older than ``grace`` (a younger one may be a write whose row is about to commit) and
  after checking once more that nothing references them. ``delete_orphans=True`` deletes them
  instead.
- ``drop_missing=True`` removes rows whose bytes are gone (the bytes cannot come back; the row
  only makes reads fail). Without it those rows are reported and kept.
- Size and sha256 mismatches are never repaired: the bytes may be the only copy left. Restore
  them from a backup, or delete the artifact.
"""

from __future__ import annotations

import hashlib
import posixpath
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from . import grid
from .access import Caller
from .errors import ArtifactStoreError, InvalidArgumentError, ProviderError

if TYPE_CHECKING:
    from .models import Row
    from .store import ArtifactStore

__all__ = ["QUARANTINE_PREFIX", "TEMP_PREFIX", "FsckReport", "Problem", "check"]

QUARANTINE_PREFIX = grid.QUARANTINE_PREFIX
TEMP_PREFIX = ".tmp-"
DEFAULT_GRACE = 3600.0
_BATCH = 500
_CHUNK = 1 << 20

#: Problem kinds that ``repair`` can fix by moving (or deleting) a blob.
BLOB_KINDS = ("orphan", "orphan-part", "stale-temp")

Progress = Callable[[str, int, "int | None"], None]


@dataclass
class Problem:
    """One disagreement between catalog and blobs. ``action`` says what a repair did to it."""

    kind: str
    key: str
    artifact_id: str | None = None
    detail: str = ""
    action: str | None = None

    @property
    def fixed(self) -> bool:
        return self.action is not None


@dataclass
class FsckReport:
    """What ``check`` looked at and found; ``ok`` when no problem remains unrepaired."""

    sandbox_id: str
    rows: int = 0
    blobs: int = 0
    verified: int = 0
    in_flight: int = 0
    problems: list[Problem] = field(default_factory=list)
    quarantine: str | None = None

    @property
    def remaining(self) -> list[Problem]:
        return [p for p in self.problems if not p.fixed]

    @property
    def ok(self) -> bool:
        return not self.remaining

    def to_dict(self) -> dict[str, Any]:
        return {
            "sandbox_id": self.sandbox_id,
            "checked": {"rows": self.rows, "blobs": self.blobs, "verified": self.verified},
            "in_flight": self.in_flight,
            "problems": [asdict(p) for p in self.problems],
            "repaired": sum(1 for p in self.problems if p.fixed),
            "remaining": len(self.remaining),
            "quarantine": self.quarantine,
            "ok": self.ok,
        }


def check(
    store: ArtifactStore,
    *,
    verify: bool = False,
    repair: bool = False,
    delete_orphans: bool = False,
    drop_missing: bool = False,
    grace: float = DEFAULT_GRACE,
    progress: Progress | None = None,
) -> FsckReport:
    """Compare ``store``'s catalog with its blobs (its own sandbox only) and optionally repair.

    An operator's tool: it acts as the application, whatever the store's strict mode.

    ``progress(phase, done, total)`` is called as rows (phase ``rows``) and blobs (``blobs``)
    are checked. See the module docstring for what is found and what each repair does.
    """
    if isinstance(grace, bool) or not isinstance(grace, (int, float)) or grace < 0:
        raise InvalidArgumentError("grace must be a non-negative number of seconds")
    if store._closed:
        raise ArtifactStoreError("the store is closed")
    started = time.time()
    report = FsckReport(sandbox_id=store.sandbox_id)
    if repair or delete_orphans:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(started))
        report.quarantine = grid.quarantine_prefix(stamp) if not delete_orphans else None
    _check_rows(store, report, verify=verify, drop_missing=drop_missing, progress=progress)
    _check_blobs(
        store,
        report,
        grace=grace,
        now=started,
        progress=progress,
        repair=repair or delete_orphans,
        delete=delete_orphans,
    )
    return report


# -- rows → blobs -------------------------------------------------------------------------------


def _check_rows(
    store: ArtifactStore,
    report: FsckReport,
    *,
    verify: bool,
    drop_missing: bool,
    progress: Progress | None,
) -> None:
    catalog = store.catalog
    with catalog.read() as conn:
        total = catalog.count_artifact_rows(conn, store.sandbox_id)
    after = 0
    while True:
        with catalog.read() as conn:
            batch = catalog.iter_artifact_rows(conn, store.sandbox_id, after, _BATCH)
        if not batch:
            return
        after = batch[-1]["row_id"]
        for row in batch:
            if row["state"] == "committed":
                problem = _confirmed(store, row, verify=verify)
                if problem is not None:
                    if drop_missing and problem.kind == "missing":
                        problem.action = _drop_row(store, row)
                    report.problems.append(problem)
                report.verified += int(verify)
            report.rows += 1
        if progress is not None:
            progress("rows", report.rows, total)


def _row_problem(store: ArtifactStore, row: Row, *, verify: bool) -> Problem | None:
    key, artifact_id = row["key"], row["artifact_id"]
    # An update whose bytes are committed but not yet moved into place: they are the row's.
    if row.get("pending_key") and store.blobs.size(row["pending_key"]) is not None:
        key = row["pending_key"]
    size = store.blobs.size(key)
    if size is None:
        return Problem("missing", key, artifact_id, f"no object; the catalog records {row['bytes']} bytes")
    if size != row["bytes"]:
        return Problem("size-mismatch", key, artifact_id, f"object has {size} bytes, catalog {row['bytes']}")
    if verify:
        try:
            digest = _sha256(store, key)
        except FileNotFoundError:
            return Problem("missing", key, artifact_id, "the object vanished while it was hashed")
        if digest != row["sha256"]:
            return Problem("sha256-mismatch", key, artifact_id, f"object sha256 {digest}, catalog {row['sha256']}")
    return None


def _confirmed(store: ArtifactStore, row: Row, *, verify: bool) -> Problem | None:
    """A problem with ``row`` that is still there on a second look, taken with the row locked.

    A concurrent ``update_file`` replaces the bytes while it holds the row's lock and commits the
    new size after; a delete tombstones the row before removing the bytes. Waiting for the lock
    and re-reading the row tells such passing disagreements from damage.
    """
    if _row_problem(store, row, verify=verify) is None:
        return None
    with store.catalog.write() as conn:
        current = store.catalog.get_artifact(conn, row["artifact_id"], for_update=True)
        if current is None or current["state"] != "committed":
            return None
        return _row_problem(store, current, verify=verify)


def _sha256(store: ArtifactStore, key: str) -> str:
    digest = hashlib.sha256()
    with store.blobs.open_read(key) as f:
        while chunk := f.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _drop_row(store: ArtifactStore, row: Row) -> str | None:
    """Remove a row whose bytes are gone, through the store's ordinary delete path."""
    if store.blobs.size(row["key"]) is not None:  # the bytes came back: keep the row
        return None
    removed, _ = store.writer.purge([row["row_id"]], event="artifact_deleted", caller=Caller(None, None))
    return "dropped" if removed else None


# -- blobs → rows -------------------------------------------------------------------------------


def _batches(keys: list[str]) -> Iterator[list[str]]:
    for start in range(0, len(keys), _BATCH):
        yield keys[start : start + _BATCH]


def _artifact_id_of(key: str) -> str | None:
    try:
        return grid.parse_grid_key(key).artifact_id
    except InvalidArgumentError:  # not a valid grid key at all: nothing can reference it
        return None


def _unreferenced(store: ArtifactStore, keys: list[str], parts_prefix: str) -> list[str]:
    """Those of ``keys`` (grid objects and upload parts) that nothing in the catalog names."""
    grid_keys = [k for k in keys if not k.startswith(parts_prefix)]
    part_uploads = {k: k[len(parts_prefix) :].split("/", 1)[0] for k in keys if k.startswith(parts_prefix)}
    ids = [a for a in (_artifact_id_of(k) for k in grid_keys) if a is not None]
    with store.catalog.read() as conn:
        named = store.catalog.referenced_keys(conn, grid_keys, ids)
        live_uploads = store.catalog.existing_upload_ids(conn, sorted(set(part_uploads.values())))
    return [k for k in keys if (k not in named if k not in part_uploads else part_uploads[k] not in live_uploads)]


def _check_blobs(
    store: ArtifactStore,
    report: FsckReport,
    *,
    grace: float,
    now: float,
    progress: Progress | None,
    repair: bool,
    delete: bool,
) -> None:
    sandbox = store.sandbox_id
    parts_prefix = grid.uploads_prefix(sandbox)
    keys = [*store.blobs.keys(grid.grid_prefix(sandbox)), *store.blobs.keys(parts_prefix)]
    for batch in _batches(keys):
        temps = [k for k in batch if posixpath.basename(k).startswith(TEMP_PREFIX)]
        candidates = [k for k in batch if k not in set(temps)]
        found: list[Problem] = []
        for key in temps:
            modified = store.blobs.modified(key)
            if modified is None:
                continue  # renamed into place (or removed) since the listing
            age = now - modified
            if age < grace:
                report.in_flight += 1
            else:
                found.append(Problem("stale-temp", key, None, f"temp file of an interrupted write, {_age(age)}"))
        orphans = _unreferenced(store, candidates, parts_prefix)
        if orphans:  # a second look: a row or upload committed since the first one adopts it
            orphans = _unreferenced(store, orphans, parts_prefix)
        for key in orphans:
            modified = store.blobs.modified(key)
            if modified is None and not store.blobs.exists(key):
                continue  # deleted since the listing
            orphan_age = now - modified if modified is not None else None
            kind = "orphan-part" if key.startswith(parts_prefix) else "orphan"
            what = "part of no upload" if kind == "orphan-part" else "no artifact row or upload names it"
            found.append(Problem(kind, key, _artifact_id_of(key), f"{what}, {_age(orphan_age)}"))
        for problem in found:
            if repair:
                try:
                    problem.action = _repair_blob(
                        store, problem, report, grace=grace, now=now, delete=delete, parts_prefix=parts_prefix
                    )
                except ProviderError as exc:  # e.g. a symbolic link planted under the root
                    problem.detail += f"; not repaired: {exc}"
            report.problems.append(problem)
        report.blobs += len(batch)
        if progress is not None:
            progress("blobs", report.blobs, len(keys))


def _repair_blob(
    store: ArtifactStore,
    problem: Problem,
    report: FsckReport,
    *,
    grace: float,
    now: float,
    delete: bool,
    parts_prefix: str,
) -> str | None:
    """Quarantine (or delete) one orphan blob if it is old enough and still unreferenced."""
    key = problem.key
    modified = store.blobs.modified(key)
    if modified is not None and now - modified < grace:
        problem.detail += f"; younger than the {grace:g} s grace period, left in place"
        return None
    if problem.kind != "stale-temp" and not _unreferenced(store, [key], parts_prefix):
        return None
    if delete:
        return "deleted" if store.blobs.delete(key) else None
    target = f"{report.quarantine}{key}"
    try:
        store.blobs.copy(key, target)
    except FileNotFoundError:
        return None  # gone meanwhile
    store.blobs.delete(key)
    return f"quarantined to {target}"


def _age(seconds: float | None) -> str:
    """``3.5 h old``, or ``age unknown``."""
    if seconds is None:
        return "age unknown"
    seconds = max(0.0, seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f} {unit} old"
    return f"{seconds:.0f} s old"
