"""``chuk-admin``: the command line for the catalog's life cycle, integrity checks and everyday
artifact work (docs/cli.md documents every command). This module is the entry point (``main``)
and holds the operations and migration commands; the group and its shared helpers are in
``cli_group``, the everyday commands in ``cli_artifacts``.

What every command shares (where the store is, who acts, one-line errors, lazy start-up) is
described in ``cli_group``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

import click

from . import cli_artifacts  # noqa: F401 - registers the everyday commands on the group
from .cli_group import (
    MAX_TTL,
    AdminGroup,
    _Bars,
    _echo_json,
    _error,
    _open_store,
    _register_plugin_commands,  # noqa: F401 - re-exported: plugins' tests load commands through it
    _settings,
    _show_progress,
    _when,
    catalog_options,
    cli,
    human_bytes,
    identity_options,
    json_option,
    pairs,
    progress_option,
    safe,
    table,
)

__all__ = ["AdminGroup", "MAX_TTL", "catalog_options", "cli", "human_bytes", "main", "safe", "table"]


# -- operations ------------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option("--quiet", is_flag=True, help="Do not log each request on stderr.")
@catalog_options
def serve(host: str, port: int, quiet: bool) -> None:
    """Serve presigned URLs of a memory/filesystem store, and share links of any store, over
    HTTP (development server).

    Prints the base URL it listens at, and warns when presigned URLs point elsewhere (set
    ARTIFACT_PUBLIC_URL to the address clients use). Logs each request on stderr (never the
    signature); stops on Ctrl-C or SIGTERM.
    """
    import logging

    from .gateway import serve as run

    with _open_store(note_memory=False) as store:
        public = store.settings.public_url.rstrip("/")

        def ready(base: str) -> None:
            click.echo(f"serving {store!r} at {base}")
            if public != base:
                click.echo(
                    f"warning: presigned URLs point at {public}, not at this server ({base}); unless a proxy "
                    f"forwards {public} here, set ARTIFACT_PUBLIC_URL={base} where URLs are presigned",
                    err=True,
                )

        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
        logger = logging.getLogger("chuk_artifacts.gateway")
        if not quiet:
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
        try:
            run(store, host, port, ready=ready)
        except KeyboardInterrupt:
            pass
        finally:
            logger.removeHandler(handler)
    click.echo("stopped", err=True)


@cli.command()
@json_option
@click.option("--user", default=None, help="Also show this user's usage and quota.")
@catalog_options
def stats(as_json: bool, user: str | None) -> None:
    """Counts and bytes of live artifacts (by scope), live sessions, and quota usage."""
    with _open_store() as store:
        data = store.get_stats()
        if user is not None:
            data["user_usage"] = {"user_id": user, **store.usage(user)}
    if as_json:
        _echo_json(data)
        return
    artifacts = data["artifacts"]
    click.echo(
        pairs(
            [
                ("provider", data["storage_provider"]),
                ("sessions provider", data["session_provider"]),
                ("sandbox", data["sandbox_id"]),
                ("catalog", data["catalog"]),
                ("artifacts", f"{artifacts['count']} ({human_bytes(artifacts['bytes'])})"),
                ("active sessions", data["sessions"]["active"]),
                ("expired, not yet swept", artifacts["expired_pending_cleanup"]),
                ("sandbox usage", _usage_line(data["usage"])),
                *([(f"usage of {user}", _usage_line(data["user_usage"]))] if user is not None else []),
            ]
        )
    )
    if artifacts["by_scope"]:
        click.echo()
        rows = [(scope, v["count"], human_bytes(v["bytes"])) for scope, v in sorted(artifacts["by_scope"].items())]
        click.echo(table(("SCOPE", "COUNT", "SIZE"), rows, right=(1, 2)))


def _usage_line(usage: dict[str, Any]) -> str:
    """``3 artifacts, 1.2 KiB`` with the quota limits, if any."""

    def limit(value: int | None, fmt: Callable[[int], str]) -> str:
        return f" of {fmt(value)}" if value is not None else ""

    return (
        f"{usage['count']}{limit(usage['max_count'], str)} artifacts, "
        f"{human_bytes(usage['bytes'])}{limit(usage['max_bytes'], human_bytes)}"
    )


@cli.command()
@json_option
@catalog_options
def validate(as_json: bool) -> None:
    """Check the catalog, the storage backend and the session provider; exit 1 if one fails."""
    with _open_store(note_memory=False) as store:
        report = store.validate_configuration()
    if as_json:
        _echo_json(report)
    else:
        rows = []
        for part in ("catalog", "storage", "session"):
            entry = report[part]
            details = ", ".join(f"{k}={v}" for k, v in entry.items() if k != "status")
            rows.append((part, entry["status"], details))
        click.echo(table(("PART", "STATUS", "DETAILS"), rows))
    if report["status"] != "ok":
        click.get_current_context().exit(1)


@cli.command()
@json_option
def plugins(as_json: bool) -> None:
    """List the registered plugins, their hooks, and the storage and session providers."""
    from . import plugins as registry

    pm = registry.ensure_plugins_loaded()
    dists = {id(plugin): dist for plugin, dist in pm.list_plugin_distinfo()}
    found = []
    for name, plugin in sorted(pm.list_name_plugin(), key=lambda item: str(item[0])):
        if plugin is None:  # blocked
            continue
        dist = dists.get(id(plugin))
        found.append(
            {
                "name": name,
                "hooks": sorted(h.name for h in (pm.get_hookcallers(plugin) or [])),
                "distribution": f"{dist.project_name} {dist.version}" if dist is not None else "built-in",
            }
        )
    sessions = getattr(registry, "known_session_providers", lambda: ["catalog"])()
    data: dict[str, Any] = {
        "plugins": found,
        "storage_providers": registry.known_providers(),
        "session_providers": sessions,
        "optional_providers": dict(registry.PROVIDER_HINTS),
    }
    if as_json:
        _echo_json(data)
        return
    click.echo(
        table(("PLUGIN", "FROM", "HOOKS"), [(p["name"], p["distribution"], ", ".join(p["hooks"])) for p in found])
    )
    click.echo()
    optional = [f"{n} ({hint})" for n, hint in data["optional_providers"].items() if n not in data["storage_providers"]]
    click.echo(
        pairs(
            [
                ("storage providers", ", ".join(data["storage_providers"])),
                ("session providers", ", ".join(sessions)),
                *([("not installed", "; ".join(optional))] if optional else []),
            ]
        )
    )


@cli.command()
@click.option("--dry-run", is_flag=True, help="Print what would go; change nothing.")
@progress_option
@json_option
@catalog_options
def cleanup(dry_run: bool, progress: bool | None, as_json: bool) -> None:
    """Remove expired artifacts (bytes and rows), expired sessions, and stale uploads with their parts.

    Safe while the store is in use, and from several machines at once.
    """
    with _open_store() as store:
        if dry_run:
            result = store.cleanup_expired_sessions(dry_run=True)
        elif _show_progress(progress):
            todo = store.cleanup_expired_sessions(dry_run=True)
            total = todo.artifacts + todo.sessions + todo.uploads
            with _Bars(True) as bars:
                done = [0]

                def tick(kind: str, n: int) -> None:
                    done[0] += n
                    bars("cleanup", min(done[0], total), total)

                tick("start", 0)
                result = store.cleanup_expired_sessions(progress=tick)
        else:
            result = store.cleanup_expired_sessions()
    if as_json:
        _echo_json({"dry_run": dry_run, **result.to_dict()})
        return
    verb = "would remove" if dry_run else "removed"
    click.echo(
        f"{verb} {result.artifacts} artifact(s) ({human_bytes(result.bytes)}), "
        f"{result.sessions} session(s), {result.uploads} upload(s)"
    )


@cli.command()
@progress_option
@json_option
@catalog_options
def reindex(progress: bool | None, as_json: bool) -> None:
    """Rebuild the full-text index: names, summaries, meta values and the text of the content.

    For artifacts stored before the index existed, or after changing ARTIFACT_TEXT_INDEX_BYTES or
    installing an extract_text plugin. Reads at most that many bytes of each artifact. Safe while
    the store is in use.
    """
    with _open_store() as store:
        if _show_progress(progress):
            total = store.get_stats().get("total_artifacts", 0)
            with _Bars(True) as bars:
                done = [0]

                def tick(n: int) -> None:
                    done[0] += n
                    bars("reindex", min(done[0], total), max(total, done[0]))

                tick(0)
                count = store.reindex(progress=tick)
        else:
            count = store.reindex()
    if as_json:
        _echo_json({"reindexed": count})
        return
    click.echo(f"reindexed {count} artifact(s)")


@cli.command()
@click.option("--verify", is_flag=True, help="Also hash every object and compare its sha256 (reads everything).")
@click.option("--repair", is_flag=True, help="Move orphan blobs and stale temp files to _quarantine/<timestamp>/.")
@click.option(
    "--delete-orphans", is_flag=True, help="Delete orphan blobs and stale temp files instead (implies --repair)."
)
@click.option("--drop-missing", is_flag=True, help="Remove catalog rows whose bytes are missing.")
@click.option(
    "--grace",
    type=click.FloatRange(min=0),
    default=3600,
    show_default=True,
    help="Seconds: younger temp files are writes in progress; younger orphans are not repaired.",
)
@progress_option
@json_option
@catalog_options
def fsck(
    verify: bool,
    repair: bool,
    delete_orphans: bool,
    drop_missing: bool,
    grace: float,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Compare the catalog with the stored bytes; exit 1 if problems remain.

    Finds rows whose bytes are missing, blobs no row or upload references, stale temp files,
    and (with --verify) size and sha256 mismatches. Mismatches are never repaired.
    """
    from . import fsck as integrity

    with _open_store() as store, _Bars(_show_progress(progress)) as bars:
        report = integrity.check(
            store,
            verify=verify,
            repair=repair,
            delete_orphans=delete_orphans,
            drop_missing=drop_missing,
            grace=grace,
            progress=bars,
        )
    if as_json:
        _echo_json(report.to_dict())
    else:
        if report.problems:
            rows = [(p.kind, p.artifact_id or "", p.key, p.detail, p.action or "") for p in report.problems]
            click.echo(table(("PROBLEM", "ARTIFACT", "KEY", "DETAIL", "REPAIR"), rows))
            click.echo()
        repaired = len(report.problems) - len(report.remaining)
        click.echo(
            f"checked {report.rows} row(s) and {report.blobs} blob(s)"
            f"{f' ({report.verified} hashed)' if verify else ''}: "
            f"{len(report.problems)} problem(s), {repaired} repaired, {len(report.remaining)} remaining"
            f"{f'; {report.in_flight} write(s) in progress skipped' if report.in_flight else ''}"
        )
    if not report.ok:
        click.get_current_context().exit(1)


# -- migrations ------------------------------------------------------------------------------------


def _catalog_url() -> str:
    from pathlib import Path

    settings = _settings()
    if settings.storage_provider == "memory" and not settings.catalog_url:
        raise click.UsageError(
            "the memory provider keeps its catalog in memory; pass --catalog URL or --provider filesystem"
        )
    url = settings.resolved_catalog_url()
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return url


@cli.group(invoke_without_command=True)
@catalog_options
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Manage the catalog schema with the alembic revisions shipped in the package.

    With no subcommand, upgrades the catalog to the newest revision (as `migrate upgrade`).
    """
    if ctx.invoked_subcommand is None:
        ctx.invoke(migrate_upgrade, revision="head")


def _revision(revision: str | None) -> str:
    return revision or "base (no tables)"


@migrate.command("upgrade")
@click.argument("revision", default="head")
@catalog_options
def migrate_upgrade(revision: str) -> None:
    """Upgrade the catalog to REVISION (default: head)."""
    from . import migrate as migrations

    url = _catalog_url()
    migrations.upgrade(url, revision)
    click.echo(f"catalog at {_revision(migrations.current_revision(url))}")


@migrate.command("downgrade")
@click.argument("revision")
@catalog_options
def migrate_downgrade(revision: str) -> None:
    """Downgrade the catalog to REVISION ('base' drops every table)."""
    from . import migrate as migrations

    url = _catalog_url()
    migrations.downgrade(url, revision)
    click.echo(f"catalog at {_revision(migrations.current_revision(url))}")


@migrate.command("current")
@json_option
@catalog_options
def migrate_current(as_json: bool) -> None:
    """Print the catalog's revision and whether it is the newest."""
    from . import migrate as migrations

    url = _catalog_url()
    current, head = migrations.current_revision(url), migrations.head_revision()
    if as_json:
        from sqlalchemy.engine import make_url

        safe = make_url(url).render_as_string(hide_password=True)
        _echo_json({"catalog": safe, "revision": current, "head": head, "is_head": current == head})
        return
    click.echo(f"{current or '(none)'}{' (head)' if current == head else f' (head is {head})'}")


@migrate.command("stamp")
@click.argument("revision", default="head")
@catalog_options
def migrate_stamp(revision: str) -> None:
    """Record REVISION as the catalog's version without migrating (for adopted databases)."""
    from . import migrate as migrations

    url = _catalog_url()
    migrations.stamp(url, revision)
    click.echo(f"catalog stamped at {_revision(migrations.current_revision(url))}")


@migrate.command("history")
@json_option
def migrate_history(as_json: bool) -> None:
    """List the revisions shipped with this version, oldest first."""
    import json

    from . import migrate as migrations

    rows = migrations.history()
    if as_json:
        click.echo(json.dumps([{"revision": r, "down_revision": d, "doc": doc} for r, d, doc in rows]))
        return
    click.echo(table(("REVISION", "DOWN", "DESCRIPTION"), [(r, d or "(base)", doc) for r, d, doc in rows]))


# -- chuk-admin share: share links (shares.py) -------------------------------------------------------
# A block of its own: the group and its three commands, nothing else in this module depends on it.


@cli.group()
def share() -> None:
    """Share links: revocable, expiring, counted URLs served by `chuk-admin serve` at /s/TOKEN."""


def _share_fields(link: Any) -> list[tuple[str, Any]]:
    limit = "none" if link.max_downloads is None else link.max_downloads
    return [
        ("share_id", link.share_id),
        ("artifact_id", link.artifact_id),
        ("state", link.state),
        ("downloads", f"{link.downloads} of {limit}"),
        ("expires_at", _when(link.expires_at)),
        ("password", "yes" if link.has_password else "no"),
        ("disposition", link.disposition),
        ("created_by", link.created_by or link.session_id or "(application)"),
    ]


@share.command("create")
@click.argument("artifact_id")
@click.option(
    "--expires",
    type=click.IntRange(1, 365 * 86400),
    default=86400,
    show_default=True,
    help="Seconds the link stays valid.",
)
@click.option("--max-downloads", type=click.IntRange(min=1), help="Downloads the link allows (default: no limit).")
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read a password from the first line of stdin; the link then asks for it (HTTP Basic).",
)
@click.option("--inline", is_flag=True, help="Ask browsers to show it rather than download it.")
@identity_options
@json_option
@catalog_options
def share_create(
    artifact_id: str,
    expires: int,
    max_downloads: int | None,
    password_stdin: bool,
    inline: bool,
    user: str | None,
    session: str | None,
    as_json: bool,
) -> None:
    """Create a share link to an artifact and print its URL (shown only this once)."""
    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise click.BadParameter("stdin held no password", param_hint="--password-stdin")
    with _open_store() as store:
        link = store.share(
            artifact_id,
            expires=expires,
            max_downloads=max_downloads,
            password=password,
            disposition="inline" if inline else "attachment",
            user_id=user,
            session_id=session,
        )
    if as_json:
        _echo_json(link.to_dict())
        return
    click.echo(link.url)
    click.echo(pairs(_share_fields(link)), err=True)


@share.command("ls")
@click.option("--artifact", "artifact_id", help="Only the links of this artifact.")
@click.option("--all", "include_inactive", is_flag=True, help="Also revoked, expired, used-up and locked links.")
@click.option("--limit", type=click.IntRange(1, 10_000), default=100, show_default=True, help="At most this many.")
@identity_options
@json_option
@catalog_options
def share_ls(
    artifact_id: str | None,
    include_inactive: bool,
    limit: int,
    user: str | None,
    session: str | None,
    as_json: bool,
) -> None:
    """List share links, newest first (without --user/--session: every link of the sandbox)."""
    with _open_store() as store:
        links = store.list_shares(
            artifact_id, include_inactive=include_inactive, limit=limit, user_id=user, session_id=session
        )
    if as_json:
        _echo_json([link.to_dict() for link in links])
        return
    rows = [dict(_share_fields(link)) for link in links]
    headers = ("SHARE", "ARTIFACT", "STATE", "DOWNLOADS", "EXPIRES", "PASSWORD")
    keys = ("share_id", "artifact_id", "state", "downloads", "expires_at", "password")
    click.echo(table(headers, [[row[k] for k in keys] for row in rows]))


@share.command("revoke")
@click.argument("share_ids", nargs=-1, required=True, metavar="SHARE_ID...")
@identity_options
@catalog_options
def share_revoke(share_ids: tuple[str, ...], user: str | None, session: str | None) -> None:
    """Revoke share links: their next request is refused (410 Gone)."""
    from .errors import ArtifactStoreError

    failed = False
    with _open_store() as store:
        for share_id in share_ids:
            try:
                if store.revoke_share(share_id, user_id=user, session_id=session):
                    click.echo(f"revoked {share_id}")
                else:
                    _error(f"share {share_id!r} not found or already revoked")
                    failed = True
            except ArtifactStoreError as exc:
                _error(str(exc))
                failed = True
    if failed:
        click.get_current_context().exit(1)


def main(args: Sequence[str] | None = None, *, standalone_mode: bool = True) -> Any:
    """Entry point of the ``chuk-admin`` script (errors: one line on stderr, exit code 1 or 2).

    ``args`` default to ``sys.argv[1:]``; with ``standalone_mode=False`` click's exceptions
    propagate and the command's return value (or exit code) is returned instead of exiting.
    """
    return cli.main(args, prog_name="chuk-admin", standalone_mode=standalone_mode)


if __name__ == "__main__":
    main()
