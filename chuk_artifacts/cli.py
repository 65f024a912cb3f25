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
import re
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


#: Characters a terminal acts on or that hide or reorder text: C0 and C1 controls (escape
#: sequences, newlines that would forge extra lines or fields), DEL, and the bidirectional and
#: line-separator marks. User text (filenames, summaries, meta, ids in messages) is shown with
#: these escaped, so what the operator reads is what is stored.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def _escape_char(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def safe(text: object) -> str:
    """``text`` as one printable line: control and bidi characters become ``\\xNN``/``\\uNNNN``."""
    return _UNSAFE.sub(_escape_char, "" if text is None else str(text))


#: The extra to install for a module a backend or catalog driver needs.
_MODULE_HINTS = {
    "psycopg": "pip install 'chuk-artifacts[postgres]'",
    "psycopg2": "pip install 'chuk-artifacts[postgres]'",
    "s3fs": "pip install 'chuk-artifacts[s3]'",
    "boto3": "pip install 'chuk-artifacts[s3]'",
    "botocore": "pip install 'chuk-artifacts[s3]'",
    "aiobotocore": "pip install 'chuk-artifacts[s3]'",
    "redis": "pip install chuk-artifacts-redis",
}


def _error(message: str) -> None:
    """``error: MESSAGE`` on stderr, as one line even when MESSAGE (a driver's) has several."""
    message = " ".join(safe(line.strip()) for line in str(message).splitlines() if line.strip())
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
        except ModuleNotFoundError as exc:
            module = (exc.name or "").partition(".")[0]
            hint = _MODULE_HINTS.get(module, f"pip install {module}" if module else "")
            _error(f"the Python module {module!r} is not installed{f': {hint}' if hint else ''}")
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
#: The store's longest TTL (``policy.MAX_TTL``, checked equal in the tests): not imported, as
#: the policy module would load the whole store at start-up.
MAX_TTL = 100 * 365 * 86400


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
        if not 1 <= seconds <= MAX_TTL:
            self.fail(f"{value!r}: a TTL is 1 to {MAX_TTL} seconds (or 'none' for no expiry)", param, ctx)
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
    from .grid import validate_meta

    try:  # the store's own rules, so a bad entry is a usage error (exit 2) like a malformed one
        return validate_meta(meta, _settings().max_meta_bytes)
    except ValueError as exc:
        raise click.BadParameter(str(exc), ctx=ctx, param=param) from None


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
    cells = [[safe(c) for c in row] for row in rows]
    widths = [max([len(h), *(len(r[i]) for r in cells)]) for i, h in enumerate(headers)]

    def line(values: Sequence[str]) -> str:
        padded = (v.rjust(w) if i in right else v.ljust(w) for i, (v, w) in enumerate(zip(values, widths)))
        return "  ".join(padded).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *(line(r) for r in cells)])


def pairs(items: Iterable[tuple[str, Any]]) -> str:
    """``name  value`` lines with the values aligned."""
    items = [(k, safe(v)) for k, v in items]
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


@click.group(cls=AdminGroup, invoke_without_command=True, context_settings={"help_option_names": ["-h", "--help"]})
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
    if ctx.invoked_subcommand is None:  # bare `chuk-admin`: the help, as a success
        click.echo(ctx.get_help())


def _register_plugin_commands(group: click.Group) -> None:
    """Plugins add their commands (hook ``register_commands``); built-ins defined below win."""
    from .plugins import ensure_plugins_loaded

    ensure_plugins_loaded().hook.register_commands(cli=group)


# -- everyday artifact work ----------------------------------------------------------------------


# -- short ids -------------------------------------------------------------------------------------

#: An abbreviated artifact id: 4 to 31 lower-case hex digits (a full id has 32).
_SHORT_ID = re.compile(r"[0-9a-f]{4,31}")


def resolve_id(store: ArtifactStore, text: str) -> str:
    """``text``, or the one artifact id it is an unambiguous prefix of (as git takes short ids).

    A prefix of several ids is a usage error listing them; a prefix of none is passed on as
    given, so the command reports the id as not found."""
    if not _SHORT_ID.fullmatch(text):
        return text
    with store.catalog.read() as conn:
        found = store.catalog.artifact_ids_with_prefix(conn, store.sandbox_id, text, 4)
    if len(found) == 1:
        return found[0]
    if len(found) > 1:
        shown = ", ".join(found[:3]) + (", …" if len(found) > 3 else "")
        raise click.UsageError(f"{text!r} is the start of several artifact ids ({shown}): give more of it")
    return text


# -- put -------------------------------------------------------------------------------------------


def _recorded_name(path: str, root: str | None = None) -> str:
    """The filename ``put`` records for ``path``: the path as given when it is relative (``a/b.txt``,
    ``./b.txt`` → ``b.txt``), else its last part. ``root``: the directory ``path`` was found in by
    ``-r``, recorded the same way, so ``put -r photos`` records ``photos/2024/x.jpg``."""
    import posixpath

    def relative(p: str) -> str | None:
        norm = posixpath.normpath(p.replace(os.sep, "/"))
        if os.path.isabs(p) or norm == ".." or norm.startswith("../"):
            return None
        return "" if norm == "." else norm

    if root is None:
        return relative(path) or os.path.basename(path)
    inside = os.path.relpath(path, root).replace(os.sep, "/")
    base = relative(root)
    if base is None:
        base = os.path.basename(os.path.normpath(root))
    return f"{base}/{inside}" if base else inside


def _inputs(paths: Sequence[str], recursive: bool) -> list[tuple[str, str | None]]:
    """(path, recorded filename) of every file to store, in order; ``("-", None)`` for stdin."""
    found: list[tuple[str, str | None]] = []
    for path in paths:
        if path == "-":
            if ("-", None) in found:
                raise click.UsageError("'-' (stdin) can be given only once")
            found.append(("-", None))
        elif os.path.isdir(path):
            if not recursive:
                raise click.UsageError(f"{safe(path)!r} is a directory: pass -r to store the files under it")
            for top, dirs, files in os.walk(path):  # symlinked directories are not followed
                dirs.sort()
                for name in sorted(files):
                    full = os.path.join(top, name)
                    if os.path.isfile(full):
                        found.append((full, _recorded_name(full, path)))
        else:
            found.append((path, _recorded_name(path)))
    return found


def _stdin_chunks(allow_empty: bool) -> Iterator[bytes]:
    """stdin in chunks; an empty stdin is refused unless ``allow_empty`` (the usual cause is a
    failed command in front of the pipe, whose error went to the terminal)."""
    stream = sys.stdin.buffer
    first = stream.read(1 << 20)
    if not first and not allow_empty:
        raise click.UsageError(
            "stdin is empty, so nothing was stored (did the command feeding the pipe fail?); "
            "pass --allow-empty to store an empty artifact"
        )

    def chunks() -> Iterator[bytes]:
        if first:
            yield first
        while chunk := stream.read(1 << 20):
            yield chunk

    return chunks()


class _ByteBar:
    """One progress bar on stderr over the bytes of a whole command (several files)."""

    def __init__(self, enabled: bool, total: int, label: str) -> None:
        self.bar: Any = None
        self.base = self.done = 0
        if enabled and total > 0:
            self.bar = click.progressbar(length=total, label=label, file=sys.stderr, show_pos=False)
            self.bar.__enter__()

    def next_file(self) -> None:
        self.base = self.done

    def __call__(self, done: int, total: int | None = None) -> None:
        if self.bar is not None:
            now = self.base + done
            self.bar.update(now - self.done)
            self.done = now

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@cli.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...", type=click.Path(exists=True, allow_dash=True))
@click.option("-r", "--recursive", is_flag=True, help="Store the files under each directory PATH.")
@click.option("--mime", help="MIME type (default: guessed from each filename, else application/octet-stream).")
@click.option("--summary", default="", help="A one-line description.")
@click.option(
    "--filename",
    help="Filename to record (one PATH only; default: PATH as given if relative, else its name; none for stdin).",
)
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
@click.option("--allow-empty", is_flag=True, help="Store an empty stdin (refused by default).")
@progress_option
@json_option
@catalog_options
def put(
    paths: tuple[str, ...],
    recursive: bool,
    mime: str | None,
    summary: str,
    filename: str | None,
    scope: str | None,
    user: str | None,
    session: str | None,
    ttl: int | str | None,
    meta: dict[str, Any] | None,
    allow_empty: bool,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Store files ('-' for stdin, -r for directories), streaming; print each new artifact id.

    One file prints its id alone; several print `ID  SIZE  FILENAME` lines as they are stored,
    then a summary on stderr. Relative paths are recorded as given (`docs/a.txt`), so `get` of
    several artifacts to a directory recreates them.
    """
    import mimetypes
    import time

    from .models import StreamUploadRequest

    inputs = _inputs(paths, recursive)
    if not inputs:
        raise click.UsageError("no files found under the directories given")
    if filename is not None:
        if len(inputs) > 1:
            raise click.UsageError("--filename names one file; several were given")
        inputs = [(inputs[0][0], filename)]
    if scope is None:
        scope = "session" if session else "user" if user else "sandbox"
    options: dict[str, Any] = {}
    if ttl is not None:
        options["ttl"] = None if ttl == NO_EXPIRY else ttl
    total_size = sum(os.path.getsize(p) for p, _ in inputs if p != "-" and os.path.isfile(p))
    stored: list[dict[str, Any]] = []
    lines: list[str] = []  # printed once the progress bar is gone (or at once without one)
    started = time.monotonic()
    bar = _ByteBar(_show_progress(progress), total_size, "put")
    with contextlib.ExitStack() as done:
        done.callback(lambda: click.echo("\n".join(lines)) if lines else None)  # what was stored, even on errors
        done.callback(bar.close)
        store = done.enter_context(_open_store())
        for path, name in inputs:
            with contextlib.ExitStack() as stack:
                if path == "-":
                    source: Any = _stdin_chunks(allow_empty)
                    length = None
                else:
                    source = stack.enter_context(open(path, "rb"))
                    info = os.fstat(source.fileno())
                    length = info.st_size if stat.S_ISREG(info.st_mode) else None
                bar.next_file()
                artifact_id = store.stream_upload(
                    StreamUploadRequest(
                        data_stream=source,
                        mime=mime or (mimetypes.guess_type(name)[0] if name else None) or "application/octet-stream",
                        summary=summary,
                        filename=name,
                        session_id=session,
                        user_id=user,
                        scope=scope,
                        meta=meta,
                        content_length=length,
                        progress_callback=bar,
                        chunk_size=1 << 20,
                        **options,
                    )
                )
            nbytes = store.metadata(artifact_id).bytes if length is None else length
            stored.append({"artifact_id": artifact_id, "filename": name, "bytes": nbytes})
            if not as_json:
                lines.append(
                    artifact_id if len(inputs) == 1 else f"{artifact_id}  {human_bytes(nbytes):>9}  {safe(name or '-')}"
                )
                if bar.bar is None:
                    click.echo(lines.pop())
    if as_json:
        _echo_json(stored)
    if len(inputs) > 1:
        total = sum(item["bytes"] for item in stored)
        click.echo(f"stored {len(stored)} files ({human_bytes(total)}) in {time.monotonic() - started:.1f} s", err=True)


# -- get -------------------------------------------------------------------------------------------


def _write_atomically(path: str, chunks: Iterable[bytes]) -> None:
    """Write ``chunks`` to a temp file beside ``path``, fsync, then rename it over ``path``."""
    import tempfile
    from pathlib import Path

    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise click.UsageError(f"directory {safe(directory)!r} does not exist: create it, or pick another --output")
    if target.is_dir():
        raise click.UsageError(f"{safe(path)!r} is a directory: give a file name, or several artifacts")
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


def _by_name(store: ArtifactStore, name: str, user: str | None, session: str | None) -> str:
    """The id of the one live artifact called ``name`` (in ``session`` / of ``user`` if given)."""
    page = store.search(user_id=user, session_id=session, filename_prefix=name, limit=100)
    found = [m.artifact_id for m in page if m.filename == name]
    where = f" in session {session!r}" if session else f" of user {user!r}" if user else ""
    if not found:
        raise ArtifactNotFoundError(f"no artifact named {name!r}{where}")
    if len(found) > 1:
        raise click.UsageError(
            f"{len(found)} artifacts are named {name!r}{where} ({', '.join(found[:3])}): get one by its id"
        )
    return found[0]


@cli.command()
@click.argument("artifact_ids", nargs=-1, metavar="[ARTIFACT_ID]...")
@click.option("--name", "names", multiple=True, help="The artifact with this filename (repeatable).")
@click.option(
    "-o",
    "--output",
    type=click.Path(allow_dash=True),
    help="FILE for one artifact (written atomically: all or nothing), or a DIRECTORY to write "
    "each artifact to by its filename (required for several).",
)
@identity_options
@progress_option
@catalog_options
def get(
    artifact_ids: tuple[str, ...],
    names: tuple[str, ...],
    output: str | None,
    user: str | None,
    session: str | None,
    progress: bool | None,
) -> None:
    """Write artifacts' bytes to stdout, --output FILE or --output DIRECTORY, streaming.

    Artifacts are named by id (or an unambiguous start of one) or with --name by filename,
    within --session or --user when given.
    """
    from pathlib import Path

    from .models import StreamDownloadRequest

    if not artifact_ids and not names:
        raise click.UsageError("name the artifacts: ARTIFACT_ID... or --name FILENAME")
    to_dir = output is not None and output != "-" and (os.path.isdir(output) or len(artifact_ids) + len(names) > 1)
    if len(artifact_ids) + len(names) > 1 and not to_dir:
        raise click.UsageError("several artifacts: pass --output DIRECTORY to write them as files")
    if to_dir and not os.path.isdir(str(output)):
        raise click.UsageError(f"directory {safe(output)!r} does not exist: create it first")
    with _open_store() as store:
        ids = [resolve_id(store, a) for a in artifact_ids] + [_by_name(store, n, user, session) for n in names]
        metas = [store.metadata(a, user_id=user, session_id=session) for a in ids]
        targets: list[str | None] = [None] * len(ids)
        if to_dir:
            paths = [str(Path(str(output), m.filename or m.artifact_id)) for m in metas]
            twice = sorted({t for t in paths if paths.count(t) > 1})
            targets = list(paths)
            if twice:
                raise click.UsageError(f"several of these artifacts would be written to {safe(twice[0])!r}")
        bar = _ByteBar(_show_progress(progress) and output not in (None, "-"), sum(m.bytes for m in metas), "get")
        with contextlib.closing(bar):
            for meta, target in zip(metas, targets):
                bar.next_file()
                chunks = store.stream_download(
                    StreamDownloadRequest(
                        meta.artifact_id, user_id=user, session_id=session, chunk_size=1 << 20, progress_callback=bar
                    )
                )
                if target is not None:
                    Path(target).parent.mkdir(parents=True, exist_ok=True)
                    _write_atomically(target, chunks)
                elif output is None or output == "-":
                    out = sys.stdout.buffer
                    for chunk in chunks:
                        out.write(chunk)
                    out.flush()
                else:
                    _write_atomically(output, chunks)
    if to_dir:
        click.echo(f"wrote {len(metas)} file(s) to {safe(output)}", err=True)


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


_LISTING_COLUMNS = ("ID", "SCOPE", "OWNER", "SIZE", "MIME", "FILENAME", "STORED")


def _print_listing(page: ArtifactList, as_json: bool) -> None:
    if as_json:
        _echo_json({"artifacts": [m.to_dict() for m in page], "next_cursor": page.next_cursor})
        return
    if page:
        rows = [
            (
                m.artifact_id,
                m.scope,
                m.owner_id or "",
                human_bytes(m.bytes),
                m.mime,
                m.filename or "",
                _when(m.stored_at),
            )
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
        meta = store.metadata(resolve_id(store, artifact_id), user_id=user, session_id=session).to_dict()
    if as_json:
        _echo_json(meta)
        return
    shown = {
        **meta,
        "bytes": f"{meta['bytes']} ({human_bytes(meta['bytes'])})" if meta["bytes"] >= 1024 else meta["bytes"],
        "meta": json.dumps(meta["meta"], ensure_ascii=False, sort_keys=True),
    }
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
        for given in artifact_ids:
            try:
                artifact_id = resolve_id(store, given)
                if store.delete(artifact_id, user_id=user, session_id=session):
                    click.echo(f"deleted {artifact_id}")
                    continue
                if force:
                    continue
                raise ArtifactNotFoundError(f"artifact {artifact_id!r} not found")
            except (ArtifactStoreError, click.UsageError) as exc:
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
        click.echo(store.presign(resolve_id(store, artifact_id), expires, user_id=user, session_id=session))


# -- operations ------------------------------------------------------------------------------------


@cli.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8787, show_default=True, type=click.IntRange(0, 65535), help="0: any free port.")
@click.option("--quiet", is_flag=True, help="Do not log each request on stderr.")
@catalog_options
def serve(host: str, port: int, quiet: bool) -> None:
    """Serve presigned URLs of a memory/filesystem store over HTTP (development server).

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


def main(args: Sequence[str] | None = None, *, standalone_mode: bool = True) -> Any:
    """Entry point of the ``chuk-admin`` script (errors: one line on stderr, exit code 1 or 2).

    ``args`` default to ``sys.argv[1:]``; with ``standalone_mode=False`` click's exceptions
    propagate and the command's return value (or exit code) is returned instead of exiting.
    """
    return cli.main(args, prog_name="chuk-admin", standalone_mode=standalone_mode)


if __name__ == "__main__":
    main()
