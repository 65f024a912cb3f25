"""``chuk-admin``: the command line for the catalog's life cycle, integrity checks and everyday
artifact work (docs/cli.md documents every command).

Where it points: the library's environment variables, overridden by ``--catalog`` / ``--provider``
/ ``--root`` given before the command (``chuk-admin --root DIR ls``) or after it (``chuk-admin ls
--root DIR``; the command's own option wins). With no provider configured at all, the CLI uses the
persistent filesystem store in ``config.cli_home()`` (``$CHUK_ARTIFACTS_HOME``, else
``~/.local/share/chuk-artifacts`` on Linux), so ``chuk-admin put x.pdf`` then ``chuk-admin ls``
works on a fresh machine. (``ArtifactStore()`` itself stays in memory by default.)

Without ``--user``/``--session`` a command acts as the application (admin), strict mode or not.
Every error is one line on stderr and a non-zero exit code (1; 2 for a usage error), never a
traceback: ``AdminGroup.main`` does it, so ``CliRunner().invoke(cli, …)`` and the ``chuk-admin``
script behave alike.

Start-up is lazy: this module imports click and a few small modules of the package; each command
imports what it needs (the store, SQLAlchemy, alembic, fsspec) in its body. Plugin commands (hook
``register_commands``) are added the first time the group needs them: to list its commands
(``--help``, shell completion) or to find a name that is not built in. So ``--version`` and
``chuk-admin put --help`` load no plugin at all, and ``--help`` loads the plugins but nothing of
the catalog (a plugin's own imports are its own).
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click

from . import __version__
from .errors import ArtifactNotFoundError, ArtifactStoreError
from .grid import SCOPES

if TYPE_CHECKING:
    from .config import Settings
    from .models import ArtifactList
    from .store import ArtifactStore

    _TtlBase = click.ParamType[int | str | None]
else:
    _TtlBase = click.ParamType  # generic in newer click only; subscripting it fails in older ones

__all__ = ["catalog_options", "cli", "main"]

#: A command function an option decorator returns unchanged (to ``@cli.command`` later).
_F = TypeVar("_F", bound=Callable[..., Any])


# -- errors: one line, never a traceback ---------------------------------------------------------


def _error(message: str) -> None:
    """``error: MESSAGE`` on stderr, as one line even when MESSAGE (a driver's) has several."""
    message = " ".join(line.strip() for line in str(message).splitlines() if line.strip())
    click.echo(f"error: {message}", err=True)


class AdminGroup(click.Group):
    """The ``chuk-admin`` group: plugin commands on first need, every error one line on stderr.

    ``commands`` holds the built-in commands until the plugin commands are added
    (``add_plugin_commands``, which ``list_commands`` and ``get_command`` of a name that is not
    built in call); a plugin command never replaces a built-in one.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.plugin_commands_added = False

    def add_plugin_commands(self) -> None:
        """Load the plugins and add the commands they register (once; built-ins keep their names)."""
        if self.plugin_commands_added:
            return
        self.plugin_commands_added = True  # before the hook: a plugin may list the commands
        built_in = dict(self.commands)
        try:
            _register_plugin_commands(self)
        except BaseException:
            self.plugin_commands_added = False
            raise
        finally:
            self.commands.update(built_in)  # a plugin's command of a built-in's name loses

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = self.commands.get(cmd_name)
        if command is None and not self.plugin_commands_added:
            self.add_plugin_commands()
            command = self.commands.get(cmd_name)
        return command

    def list_commands(self, ctx: click.Context) -> list[str]:
        self.add_plugin_commands()
        return super().list_commands(ctx)

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.Abort:
            _error("aborted")
            sys.exit(1)
        except click.ClickException as exc:
            hint = ""
            if isinstance(exc, click.UsageError) and exc.ctx is not None:
                hint = f" (see '{exc.ctx.command_path} --help')"
            _error(f"{exc.format_message()}{hint}")
            sys.exit(exc.exit_code)
        except BrokenPipeError:  # `chuk-admin get X | head`: the reader went away
            with contextlib.suppress(Exception):
                os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
            sys.exit(1)
        except (ArtifactStoreError, OSError) as exc:
            _error(str(exc))
            sys.exit(1)
        except Exception as exc:  # noqa: BLE001 - database errors and the like: still one line
            _error(f"{type(exc).__name__}: {exc}")
            sys.exit(1)
        sys.exit(code if isinstance(code, int) else 0)


# -- where the CLI points ------------------------------------------------------------------------

_catalog_options = [
    click.option("--catalog", help="Catalog database URL (ARTIFACT_CATALOG_URL)."),
    click.option("--provider", help="Storage provider (ARTIFACT_PROVIDER): filesystem, memory, s3 …"),
    click.option("--root", help="Filesystem root (ARTIFACT_FS_ROOT); default: chuk-admin's home."),
]


def _target() -> dict[str, str | None]:
    """The options of the group and of the command, merged (the command's win)."""
    ctx = click.get_current_context()
    root = ctx.find_root()
    target: dict[str, str | None] = root.ensure_object(dict)
    return target


def catalog_options(func: _F) -> _F:
    """Add ``--catalog``/``--provider``/``--root`` to a command (they override the group's)."""

    @functools.wraps(func)
    def wrapper(
        *args: Any, catalog: str | None = None, provider: str | None = None, root: str | None = None, **kwargs: Any
    ) -> Any:
        given = {"catalog": catalog, "provider": provider, "root": root}
        _target().update({k: v for k, v in given.items() if v is not None})
        return func(*args, **kwargs)

    for option in reversed(_catalog_options):
        wrapper = option(wrapper)
    return cast("_F", wrapper)


def _settings() -> Settings:
    from .config import cli_settings

    t = _target()
    return cli_settings(
        catalog_url=t.get("catalog"),
        storage_provider=t.get("provider"),
        fs_root=t.get("root"),
        sandbox_id=t.get("sandbox"),
    )


@contextlib.contextmanager
def _open_store(*, note_memory: bool = True) -> Iterator[ArtifactStore]:
    """The store the options point at, acting as the application (admin), closed afterwards."""
    from .policy import admin_call as _admin_call
    from .store import ArtifactStore

    settings = _settings()
    if note_memory and settings.storage_provider == "memory" and not settings.catalog_url:
        click.echo("note: the memory provider keeps nothing after this command exits", err=True)
    store = ArtifactStore(settings=settings)
    token = _admin_call.set(True)
    try:
        yield store
    finally:
        _admin_call.reset(token)
        store.close()


# -- option types --------------------------------------------------------------------------------

NO_EXPIRY = "none"


class TtlType(_TtlBase):
    """Seconds (a positive integer) or ``none`` (never expires)."""

    name = "SECONDS|none"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | str | None:
        if value is None or isinstance(value, int):
            return value
        text = str(value).strip().lower()
        if text in ("none", "never"):
            return NO_EXPIRY
        try:
            seconds = int(text)
        except ValueError:
            self.fail(f"{value!r} is not a number of seconds or 'none'", param, ctx)
        if seconds < 1:
            self.fail(f"{value!r}: a TTL is at least 1 second (or 'none' for no expiry)", param, ctx)
        return seconds


def _reject_constant(name: str) -> NoReturn:
    raise ValueError(name)  # NaN and Infinity are not JSON: keep them as strings


def _parse_meta(ctx: click.Context, param: click.Parameter, values: Sequence[str]) -> dict[str, Any] | None:
    """``KEY=VALUE`` pairs; a VALUE that parses as JSON is that value, else the string."""
    import json

    if not values:
        return None
    meta: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", ctx=ctx, param=param)
        try:
            meta[key] = json.loads(raw, parse_constant=_reject_constant)
        except ValueError:
            meta[key] = raw
    return meta


def identity_options(func: _F) -> _F:
    func = click.option("--session", help="Act as this session (SESSION_ID).")(func)
    func = click.option("--user", help="Act as this user (USER_ID).")(func)
    return func


def json_option(func: _F) -> _F:
    return click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")(func)


def progress_option(func: _F) -> _F:
    return click.option(
        "--progress/--no-progress",
        default=None,
        help="Show a progress bar on stderr (default: when stderr is a terminal).",
    )(func)


# -- output ----------------------------------------------------------------------------------------


def _echo_json(value: Any) -> None:
    import json

    click.echo(json.dumps(value, indent=2, default=str, ensure_ascii=False))


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]], *, right: Sequence[int] = ()) -> str:
    """Rows as aligned columns under a header and a rule; columns in ``right`` align right."""
    cells = [["" if c is None else str(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = (v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def pairs(items: Iterable[tuple[str, Any]]) -> str:
    """``name  value`` lines with the values aligned."""
    items = [(k, "" if v is None else str(v)) for k, v in items]
    width = max((len(k) for k, _ in items), default=0)
    return "\n".join(f"{k.ljust(width)}  {v}".rstrip() for k, v in items)


def human_bytes(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def _when(iso: str | None) -> str:
    return "" if iso is None else iso[:19] + "Z"


class _Bars:
    """click progress bars on stderr, one per phase, fed ``(phase, done, total)``."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar: Any = None
        self.phase: str | None = None
        self.done = 0

    def __call__(self, phase: str, done: int, total: int | None) -> None:
        if not self.enabled:
            return
        if phase != self.phase:
            self.close()
            self.bar = click.progressbar(length=total or 0, label=phase, file=sys.stderr)
            self.bar.__enter__()
            self.phase, self.done = phase, 0
        self.bar.update(done - self.done)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None

    def __enter__(self) -> _Bars:  # noqa: PYI034 - a private helper, never subclassed
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _show_progress(flag: bool | None) -> bool:
    if flag is not None:
        return flag
    return sys.stderr.isatty()


# -- the group -------------------------------------------------------------------------------------


@click.group(cls=AdminGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__)  # not package_name=: importlib.metadata costs as much as click
@click.option("--catalog", help="Catalog database URL (ARTIFACT_CATALOG_URL).")
@click.option("--provider", help="Storage provider (ARTIFACT_PROVIDER); default: filesystem.")
@click.option(
    "--root", help="Filesystem root (ARTIFACT_FS_ROOT); default: $CHUK_ARTIFACTS_HOME or ~/.local/share/chuk-artifacts."
)
@click.option("--sandbox", help="Sandbox id (ARTIFACT_SANDBOX_ID).")
@click.pass_context
def cli(ctx: click.Context, catalog: str | None, provider: str | None, root: str | None, sandbox: str | None) -> None:
    """Use and administer chuk-artifacts stores: artifacts, migrations, cleanup and integrity.

    With no provider configured, commands use the persistent store in $CHUK_ARTIFACTS_HOME
    (default ~/.local/share/chuk-artifacts on Linux). See docs/cli.md.
    """
    ctx.ensure_object(dict)
    ctx.obj.update(catalog=catalog, provider=provider, root=root, sandbox=sandbox)


def _register_plugin_commands(group: click.Group) -> None:
    """Plugins add their commands (hook ``register_commands``); built-ins defined below win."""
    from .plugins import ensure_plugins_loaded

    ensure_plugins_loaded().hook.register_commands(cli=group)


# -- everyday artifact work ----------------------------------------------------------------------


@cli.command()
@click.argument("path", type=click.Path(exists=True, dir_okay=False, allow_dash=True))
@click.option("--mime", help="MIME type (default: guessed from the filename, else application/octet-stream).")
@click.option("--summary", default="", help="A one-line description.")
@click.option("--filename", help="Filename to record (default: PATH's name; none for stdin).")
@click.option(
    "--scope", type=click.Choice(SCOPES), help="Default: session with --session, user with --user, else sandbox."
)
@identity_options
@click.option("--ttl", type=TtlType(), help="Seconds until it expires, or 'none' (default: the scope's).")
@click.option(
    "--meta",
    multiple=True,
    callback=_parse_meta,
    metavar="KEY=VALUE",
    help="Metadata entry (repeatable); VALUE is JSON if it parses, else a string.",
)
@catalog_options
def put(
    path: str,
    mime: str | None,
    summary: str,
    filename: str | None,
    scope: str | None,
    user: str | None,
    session: str | None,
    ttl: int | str | None,
    meta: dict[str, Any] | None,
) -> None:
    """Store the file PATH ('-' for stdin), streaming; print the new artifact id."""
    import mimetypes

    from .models import StreamUploadRequest

    if filename is None and path != "-":
        filename = os.path.basename(path)
    if mime is None:
        mime = (mimetypes.guess_type(filename)[0] if filename else None) or "application/octet-stream"
    if scope is None:
        scope = "session" if session else "user" if user else "sandbox"
    options: dict[str, Any] = {}
    if ttl is not None:
        options["ttl"] = None if ttl == NO_EXPIRY else ttl
    with contextlib.ExitStack() as stack:
        if path == "-":
            source, length = sys.stdin.buffer, None
        else:
            source = stack.enter_context(open(path, "rb"))
            info = os.fstat(source.fileno())
            length = info.st_size if stat.S_ISREG(info.st_mode) else None
        store = stack.enter_context(_open_store())
        artifact_id = store.stream_upload(
            StreamUploadRequest(
                data_stream=source,
                mime=mime,
                summary=summary,
                filename=filename,
                session_id=session,
                user_id=user,
                scope=scope,
                meta=meta,
                content_length=length,
                chunk_size=1 << 20,
                **options,
            )
        )
    click.echo(artifact_id)


def _write_atomically(path: str, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to a temp file beside ``path``, fsync, then rename it over ``path``."""
    import tempfile
    from pathlib import Path

    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".part", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        try:
            mode = stat.S_IMODE(os.stat(target).st_mode)
        except FileNotFoundError:
            umask = os.umask(0)
            os.umask(umask)
            mode = 0o666 & ~umask
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@cli.command()
@click.argument("artifact_id")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, allow_dash=True),
    help="Write to FILE (atomically: all or nothing) instead of stdout.",
)
@identity_options
@catalog_options
def get(artifact_id: str, output: str | None, user: str | None, session: str | None) -> None:
    """Write an artifact's bytes to stdout or --output FILE, streaming."""
    from .models import StreamDownloadRequest

    with _open_store() as store:
        chunks = store.stream_download(
            StreamDownloadRequest(artifact_id, user_id=user, session_id=session, chunk_size=1 << 20)
        )
        if output is None or output == "-":
            out = sys.stdout.buffer
            for chunk in chunks:
                out.write(chunk)
            out.flush()
        else:
            _write_atomically(output, chunks)


def search_options(func: _F) -> _F:
    """The filters of ``ArtifactStore.search``, pagination and ``--json``."""
    for option in reversed(
        [
            click.option("--user", help="Artifacts of this user (and what the user may read)."),
            click.option("--session", help="Artifacts of this session."),
            click.option("--scope", type=click.Choice(SCOPES), help="Only this scope."),
            click.option("--mime", help="MIME type prefix, e.g. image/."),
            click.option(
                "--meta",
                multiple=True,
                callback=_parse_meta,
                metavar="KEY=VALUE",
                help="Top-level meta entry that must match exactly (repeatable; JSON values).",
            ),
            click.option("--prefix", help="Filename prefix."),
            click.option(
                "--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Artifacts per page."
            ),
            click.option("--cursor", help="Continue after the page that printed this cursor."),
        ]
    ):
        func = option(func)
    return json_option(func)


_LISTING_COLUMNS = ("ID", "SCOPE", "OWNER", "BYTES", "MIME", "FILENAME", "STORED")


def _print_listing(page: ArtifactList, as_json: bool) -> None:
    if as_json:
        _echo_json({"artifacts": [m.to_dict() for m in page], "next_cursor": page.next_cursor})
        return
    if page:
        rows = [
            (m.artifact_id, m.scope, m.owner_id or "", m.bytes, m.mime, m.filename or "", _when(m.stored_at))
            for m in page
        ]
        click.echo(table(_LISTING_COLUMNS, rows, right=(3,)))
    else:
        click.echo("no artifacts")
    if page.next_cursor:
        click.echo(f"next cursor: {page.next_cursor}")


def _find(
    store: ArtifactStore,
    *,
    by_session: bool,
    user: str | None,
    session: str | None,
    scope: str | None,
    mime: str | None,
    meta: dict[str, Any] | None,
    prefix: str | None,
    limit: int,
    cursor: str | None,
) -> ArtifactList:
    if by_session and session and not (scope or mime or meta or prefix):
        return store.list_by_session(session, limit, cursor=cursor, user_id=user)
    return store.search(
        user_id=user,
        session_id=session,
        scope=scope,
        mime_prefix=mime,
        meta_filter=meta,
        filename_prefix=prefix,
        limit=limit,
        cursor=cursor,
    )


@cli.command("ls")
@search_options
@catalog_options
def ls(as_json: bool, **filters: Any) -> None:
    """List live artifacts, oldest first, one page at a time (a session's with --session)."""
    with _open_store() as store:
        _print_listing(_find(store, by_session=True, **filters), as_json)


@cli.command()
@search_options
@catalog_options
def search(as_json: bool, **filters: Any) -> None:
    """Search live artifacts by user, session, scope, MIME prefix, meta and filename prefix."""
    with _open_store() as store:
        _print_listing(_find(store, by_session=False, **filters), as_json)


@cli.command()
@click.argument("artifact_id")
@identity_options
@json_option
@catalog_options
def info(artifact_id: str, user: str | None, session: str | None, as_json: bool) -> None:
    """Print an artifact's metadata."""
    import json

    with _open_store() as store:
        meta = store.metadata(artifact_id, user_id=user, session_id=session).to_dict()
    if as_json:
        _echo_json(meta)
        return
    shown = {**meta, "meta": json.dumps(meta["meta"], ensure_ascii=False, sort_keys=True)}
    click.echo(pairs(shown.items()))


@cli.command()
@click.argument("artifact_ids", nargs=-1, required=True, metavar="ARTIFACT_ID...")
@click.option("-f", "--force", is_flag=True, help="Ignore artifacts that do not exist.")
@identity_options
@catalog_options
def rm(artifact_ids: tuple[str, ...], force: bool, user: str | None, session: str | None) -> None:
    """Delete artifacts (bytes and catalog rows)."""
    failed = False
    with _open_store() as store:
        for artifact_id in artifact_ids:
            try:
                if store.delete(artifact_id, user_id=user, session_id=session):
                    click.echo(f"deleted {artifact_id}")
                    continue
                if force:
                    continue
                raise ArtifactNotFoundError(f"artifact {artifact_id!r} not found")
            except ArtifactStoreError as exc:
                _error(str(exc))
                failed = True
    if failed:
        click.get_current_context().exit(1)


@cli.command()
@click.argument("artifact_id")
@click.option(
    "--expires", type=click.IntRange(1, 7 * 86400), default=3600, show_default=True, help="Seconds the URL stays valid."
)
@identity_options
@catalog_options
def presign(artifact_id: str, expires: int, user: str | None, session: str | None) -> None:
    """Print a URL that downloads the artifact without credentials (serve memory/filesystem
    stores with `chuk-admin serve`)."""
    with _open_store() as store:
        click.echo(store.presign(artifact_id, expires, user_id=user, session_id=session))


# -- operations ------------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=int)
@catalog_options
def serve(host: str, port: int) -> None:
    """Serve presigned URLs of a memory/filesystem store, and share links of any store, over
    HTTP (development server).

    Set ARTIFACT_PUBLIC_URL to the address clients use (default http://127.0.0.1:8787).
    """
    from .gateway import serve as run

    with _open_store(note_memory=False) as store:
        click.echo(f"serving {store!r} on http://{host}:{port} (public URL {store.settings.public_url})")
        try:
            run(store, host, port)
        except KeyboardInterrupt:
            pass


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
        rows = [(scope, v["count"], v["bytes"]) for scope, v in sorted(artifacts["by_scope"].items())]
        click.echo(table(("SCOPE", "COUNT", "BYTES"), rows, right=(1, 2)))


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


@cli.group()
def migrate() -> None:
    """Manage the catalog schema with the alembic revisions shipped in the package."""


@migrate.command("upgrade")
@click.argument("revision", default="head")
@catalog_options
def migrate_upgrade(revision: str) -> None:
    """Upgrade the catalog to REVISION (default: head)."""
    from . import migrate as migrations

    url = _catalog_url()
    migrations.upgrade(url, revision)
    click.echo(f"catalog at {migrations.current_revision(url)}")


@migrate.command("downgrade")
@click.argument("revision")
@catalog_options
def migrate_downgrade(revision: str) -> None:
    """Downgrade the catalog to REVISION ('base' drops every table)."""
    from . import migrate as migrations

    url = _catalog_url()
    migrations.downgrade(url, revision)
    click.echo(f"catalog at {migrations.current_revision(url)}")


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
    click.echo(f"catalog stamped at {migrations.current_revision(url)}")


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
