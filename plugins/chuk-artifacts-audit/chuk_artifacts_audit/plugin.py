"""The plugin module registered under the ``chuk_artifacts`` entry-point group.

``CHUK_AUDIT_LOG`` (read when a store first reports an event) chooses the sink: ``catalog`` (the
``chuk_audit_log`` table of the store's catalog database), ``jsonl:/path/audit.jsonl``, or unset /
``off``: nothing is recorded. ``chuk-admin audit`` queries it.
"""

from __future__ import annotations

import json
import os
import weakref
from typing import Any

import click

from chuk_artifacts.hookspecs import hookimpl

from .sinks import Sink, entry, open_sink, parse_since, query_url

ENV_VAR = "CHUK_AUDIT_LOG"

_sinks: weakref.WeakKeyDictionary[Any, Sink | None] = weakref.WeakKeyDictionary()


def sink_for(store: Any) -> Sink | None:
    """The store's sink, chosen from ``CHUK_AUDIT_LOG`` on its first event."""
    try:
        return _sinks[store]
    except KeyError:
        sink = open_sink(os.environ.get(ENV_VAR), store.catalog)
        _sinks[store] = sink
        return sink


def _record(
    store: Any,
    action: str,
    caller: Any,
    *,
    outcome: str = "allowed",
    session_id: str | None = None,
    artifact_id: str | None = None,
    **detail: Any,
) -> None:
    sink = sink_for(store)
    if sink is None:
        return
    sink.record(
        entry(
            sandbox_id=store.sandbox_id,
            action=action,
            outcome=outcome,
            user_id=caller.user_id,
            session_id=session_id if session_id is not None else caller.session_id,
            artifact_id=artifact_id,
            detail={k: v for k, v in detail.items() if v is not None},
        )
    )


def _artifact(store: Any, action: str, metadata: Any, caller: Any) -> None:
    _record(
        store,
        action,
        caller,
        artifact_id=metadata.artifact_id,
        scope=metadata.scope,
        owner_id=metadata.owner_id,
        artifact_session_id=metadata.session_id,
        key=metadata.key,
        bytes=metadata.bytes,
        sha256=metadata.sha256,
        filename=metadata.filename,
    )


# -- lifecycle hooks -------------------------------------------------------------------------


@hookimpl
def artifact_stored(store: Any, metadata: Any, caller: Any) -> None:
    _artifact(store, "stored", metadata, caller)


@hookimpl
def artifact_updated(store: Any, metadata: Any, caller: Any) -> None:
    _artifact(store, "updated", metadata, caller)


@hookimpl
def artifact_deleted(store: Any, metadata: Any, caller: Any) -> None:
    _artifact(store, "deleted", metadata, caller)


@hookimpl
def artifact_expired(store: Any, metadata: Any, caller: Any) -> None:
    _artifact(store, "expired", metadata, caller)


@hookimpl
def session_created(store: Any, session_id: str, user_id: str | None, caller: Any) -> None:
    _record(store, "session_created", caller, session_id=session_id, session_user_id=user_id)


@hookimpl
def session_deleted(store: Any, session_id: str, caller: Any, expired: bool) -> None:
    _record(store, "session_expired" if expired else "session_deleted", caller, session_id=session_id)


@hookimpl
def access_denied(
    store: Any, action: str, caller: Any, artifact_id: str | None, session_id: str | None, reason: str
) -> None:
    _record(store, action, caller, outcome="denied", session_id=session_id, artifact_id=artifact_id, reason=reason)


def _share(store: Any, action: str, share: Any, caller: Any) -> None:
    # never the link's url: it holds the secret token
    _record(
        store,
        action,
        caller,
        artifact_id=share.artifact_id,
        share_id=share.share_id,
        expires_at=share.expires_at,
        max_downloads=share.max_downloads,
        downloads=share.downloads,
        has_password=share.has_password,
        created_by=share.created_by,
    )


@hookimpl
def share_created(store: Any, share: Any, caller: Any) -> None:
    _share(store, "share_created", share, caller)


@hookimpl
def share_used(store: Any, share: Any) -> None:
    from chuk_artifacts.access import Caller

    # the download is anonymous: whoever holds the link
    _share(store, "share_used", share, Caller())


@hookimpl
def share_revoked(store: Any, share: Any, caller: Any) -> None:
    _share(store, "share_revoked", share, caller)


# -- chuk-admin audit ------------------------------------------------------------------------


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="audit")
    @click.option(
        "--log",
        "log_spec",
        envvar=ENV_VAR,
        help="Where the trail is: 'catalog' (default) or 'jsonl:PATH' (CHUK_AUDIT_LOG).",
    )
    @click.option("--catalog", envvar="ARTIFACT_CATALOG_URL", help="Catalog database URL (ARTIFACT_CATALOG_URL).")
    @click.option("--provider", help="Storage provider whose catalog to read (ARTIFACT_PROVIDER).")
    @click.option("--root", help="Filesystem root (ARTIFACT_FS_ROOT).")
    @click.option("--user", help="Only entries of this user.")
    @click.option("--artifact", help="Only entries about this artifact id.")
    @click.option("--action", help="Only this action (stored, deleted, session_created, retrieve …).")
    @click.option("--outcome", type=click.Choice(["allowed", "denied"]), help="Only allowed or denied calls.")
    @click.option("--since", help="Only entries since an ISO time or a duration ago (15m, 2h, 7d).")
    @click.option(
        "--limit",
        default=100,
        show_default=True,
        type=click.IntRange(min=0),
        help="At most this many (the newest); 0 for all.",
    )
    @click.option("--json", "as_json", is_flag=True, help="Print JSON lines.")
    def audit(
        log_spec: str | None,
        catalog: str | None,
        provider: str | None,
        root: str | None,
        user: str | None,
        artifact: str | None,
        action: str | None,
        outcome: str | None,
        since: str | None,
        limit: int,
        as_json: bool,
    ) -> None:
        """Query the audit trail (chuk-artifacts-audit): who did what, when, to which artifact."""
        filters: dict[str, Any] = {
            "user": user,
            "artifact": artifact,
            "action": action,
            "outcome": outcome,
            "limit": limit,
        }
        if since:
            try:
                filters["since"] = parse_since(since)
            except ValueError as exc:
                raise click.BadParameter(str(exc), param_hint="--since") from None
        spec = (log_spec or "catalog").strip()
        if spec.startswith("jsonl:"):
            sink = open_sink(spec)
            rows = sink.query(**filters) if sink is not None else []
        elif spec == "catalog":
            rows = query_url(_catalog_url(catalog, provider, root), **filters)
        else:
            raise click.BadParameter("expected 'catalog' or 'jsonl:PATH'", param_hint="--log")
        for row in rows:
            if as_json:
                click.echo(json.dumps(row, ensure_ascii=False, sort_keys=True))
            else:
                click.echo(_line(row))


def _catalog_url(catalog: str | None, provider: str | None, root: str | None) -> str:
    from chuk_artifacts.config import Settings

    settings = Settings.from_env(catalog_url=catalog, storage_provider=provider, fs_root=root)
    if settings.storage_provider == "memory" and not settings.catalog_url:
        raise click.UsageError(
            "a memory store keeps its catalog in memory; pass --catalog URL or --provider filesystem"
        )
    return settings.resolved_catalog_url()


def _line(row: dict[str, Any]) -> str:
    detail = row.get("detail") or {}
    extra = f" reason={detail['reason']!r}" if "reason" in detail else ""
    return (
        f"{row['time']} {row['outcome']:<7} {row['action']:<16} user={row['user_id'] or '-'} "
        f"session={row['session_id'] or '-'} artifact={row['artifact_id'] or '-'}{extra}"
    )
