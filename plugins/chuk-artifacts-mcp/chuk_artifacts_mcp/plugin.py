"""The plugin module registered under the ``chuk_artifacts`` entry-point group: lifecycle hooks that
feed the servers' change notifications, and ``chuk-admin mcp``.

Importing this module is cheap (the hooks are loaded in every process that has the plugin
installed, and ``chuk-admin --help`` loads it): the MCP SDK and SQLAlchemy are imported only by
the command and by the servers. The hooks cost a lookup in a process that serves no MCP client and
writes no change feed: no notifiers for the store, no feed origin, return.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import sys
from typing import Any

import click

from chuk_artifacts.hookspecs import hookimpl

from . import hub

# -- lifecycle hooks -------------------------------------------------------------------------


def _changed(store: Any, kind: str, metadata: Any) -> None:
    """Tell this process's servers of the store, and the change feed if it is on."""
    notifiers = hub.notifiers_for(store)
    origin = hub.feed_origin(store)
    if not notifiers and origin is None:
        return
    try:
        change = hub.Change.from_metadata(kind, metadata)
        for notifier in notifiers:
            notifier.changed(change)
        if origin is not None:
            from .feed import record

            record(store, change, origin)
    except Exception:  # notifications are advisory: never fail the change that already committed
        logging.getLogger(__name__).exception("could not publish the %s of %s", kind, metadata.artifact_id)


@hookimpl
def artifact_stored(store: Any, metadata: Any, caller: Any) -> None:
    _changed(store, "stored", metadata)


@hookimpl
def artifact_updated(store: Any, metadata: Any, caller: Any) -> None:
    _changed(store, "updated", metadata)


@hookimpl
def artifact_deleted(store: Any, metadata: Any, caller: Any) -> None:
    _changed(store, "deleted", metadata)


@hookimpl
def artifact_expired(store: Any, metadata: Any, caller: Any) -> None:
    _changed(store, "expired", metadata)


# -- chuk-admin mcp --------------------------------------------------------------------------


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load_verifier(spec: str) -> Any:
    """``package.module:attribute``: a ``TokenVerifier`` instance, or a callable returning one."""
    import importlib

    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise click.BadParameter("expected 'package.module:attribute'", param_hint="--token-verifier")
    try:
        obj = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise click.BadParameter(f"cannot load {spec!r}: {exc}", param_hint="--token-verifier") from None
    verifier = obj() if callable(obj) and not hasattr(obj, "verify_token") else obj
    if not hasattr(verifier, "verify_token"):
        raise click.BadParameter(f"{spec!r} has no verify_token method", param_hint="--token-verifier")
    return verifier


@hookimpl
def register_commands(cli: click.Group) -> None:
    @cli.command(name="mcp")
    @click.option(
        "--transport",
        type=click.Choice(["stdio", "http"]),
        default="stdio",
        show_default=True,
        help="stdio (one client, launched by it) or streamable HTTP on a loopback port.",
    )
    @click.option("--host", default="127.0.0.1", show_default=True, help="HTTP: a loopback address.")
    @click.option("--port", default=8788, show_default=True, type=click.IntRange(0, 65535), help="HTTP port.")
    @click.option("--user", envvar="CHUK_MCP_USER", help="The user of clients without a token (CHUK_MCP_USER).")
    @click.option(
        "--tokens",
        envvar="CHUK_MCP_TOKENS",
        type=click.Path(exists=True, dir_okay=False),
        help="HTTP: a JSON file {token: user_id} of accepted bearer tokens (CHUK_MCP_TOKENS).",
    )
    @click.option("--token-verifier", help="HTTP: package.module:attribute of a TokenVerifier (or a factory).")
    @click.option(
        "--inline-max",
        default=16 * 1024,
        show_default=True,
        type=click.IntRange(min=0),
        help="Largest text artifact_read returns inline (bytes); bigger: a resource link.",
    )
    @click.option(
        "--base64-max",
        default=1024 * 1024,
        show_default=True,
        type=click.IntRange(min=1),
        help="Largest decoded payload artifact_store_base64 accepts (bytes).",
    )
    @click.option(
        "--watch/--no-watch",
        default=None,
        help="Use the change feed (other processes' changes); default: on unless the catalog is in memory.",
    )
    def mcp(
        transport: str,
        host: str,
        port: int,
        user: str | None,
        tokens: str | None,
        token_verifier: str | None,
        inline_max: int,
        base64_max: int,
        watch: bool | None,
    ) -> None:
        """Serve the store to MCP clients (chuk-artifacts-mcp): tools and artifact:// resources."""
        from chuk_artifacts import AsyncArtifactStore
        from chuk_artifacts.config import cli_settings

        from .config import ServerConfig
        from .identity import StaticTokenVerifier
        from .server import build_server

        if tokens and token_verifier:
            raise click.UsageError("pass --tokens or --token-verifier, not both")
        verifier: Any = None
        if tokens:
            try:
                verifier = StaticTokenVerifier.from_file(tokens)
            except (OSError, ValueError) as exc:
                raise click.BadParameter(str(exc), param_hint="--tokens") from None
        elif token_verifier:
            verifier = _load_verifier(token_verifier)
        if transport == "stdio" and verifier is not None:
            raise click.UsageError("stdio has no bearer tokens: use --user, or --transport http")
        if transport == "http" and not _loopback(host):
            raise click.BadParameter(f"{host!r} is not a loopback address", param_hint="--host")

        root = click.get_current_context().find_root().obj or {}
        settings = cli_settings(
            catalog_url=root.get("catalog"),
            storage_provider=root.get("provider"),
            fs_root=root.get("root"),
            sandbox_id=root.get("sandbox"),
        )
        store = AsyncArtifactStore(settings=settings)
        config = ServerConfig(inline_text_bytes=inline_max, max_base64_bytes=base64_max, watch=watch)
        server = build_server(store, user_id=user, token_verifier=verifier, config=config)
        try:
            if transport == "stdio":
                logging.basicConfig(stream=sys.stderr, level=os.environ.get("CHUK_MCP_LOG_LEVEL", "WARNING"))
                server.run("stdio")
            else:
                click.echo(f"chuk-artifacts MCP server on http://{host}:{port}/mcp", err=True)
                server.run("streamable-http", host=host, port=port)
        finally:
            store.sync.close()
