"""The ``chuk-admin`` group and what its commands share: one-line errors (``AdminGroup``), the
options that say where the store is and who acts, option types, and the output helpers (tables,
sizes, escaping of user text, progress bars). The commands are in ``cli_artifacts`` (everyday
artifact work) and ``cli`` (operations and migrations, and the ``main`` entry point).

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
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, NoReturn, TypeVar, cast

import click

from . import __version__
from .errors import ArtifactStoreError

if TYPE_CHECKING:
    from .config import Settings
    from .store import ArtifactStore

    _TtlBase = click.ParamType[int | str | None]
else:
    _TtlBase = click.ParamType  # generic in newer click only; subscripting it fails in older ones

__all__ = ["AdminGroup", "catalog_options", "cli", "human_bytes", "pairs", "safe", "table"]

#: A command function an option decorator returns unchanged (to ``@cli.command`` later).
_F = TypeVar("_F", bound=Callable[..., Any])


# -- errors: one line, never a traceback ---------------------------------------------------------


#: Characters a terminal acts on or that hide or reorder text: C0 and C1 controls (escape
#: sequences, newlines that would forge extra lines or fields), DEL, and the bidirectional and
#: line-separator marks. User text (filenames, summaries, meta, ids in messages) is shown with
#: these escaped, so what the operator reads is what is stored.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


#: Those of ``_UNSAFE`` that ``json.dumps(ensure_ascii=False)`` writes raw (it escapes C0 itself).
_JSON_RAW = re.compile(r"[\x7f-\x9f\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


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


#: What click (8.2 and newer) raises for a group given no subcommand; never raised by older ones.
_NO_ARGS_IS_HELP: type[click.UsageError] = getattr(
    click.exceptions, "NoArgsIsHelpError", type("_Never", (click.UsageError,), {})
)


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
        except _NO_ARGS_IS_HELP as exc:  # a (plugin's) group named without a subcommand: its help
            click.echo(exc.ctx.get_help() if exc.ctx is not None else exc.format_message())
            sys.exit(0)
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
    """``value`` as JSON. JSON escapes the C0 controls itself; the C1 controls and bidi marks it
    leaves raw are written as ``\\uNNNN`` too (the same JSON value, harmless on a terminal)."""
    import json

    text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    click.echo(_JSON_RAW.sub(lambda m: f"\\u{ord(m.group()):04x}", text))


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
