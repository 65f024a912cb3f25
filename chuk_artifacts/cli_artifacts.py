"""``chuk-admin``'s everyday commands: ``put``, ``get``, ``ls``, ``search``, ``info``, ``rm``,
``presign``, and the short-id lookup they share (docs/cli.md documents each)."""

from __future__ import annotations

import contextlib
import os
import re
import stat
import sys
from collections.abc import Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

import click

from .cli_group import (
    _F,
    NO_EXPIRY,
    TtlType,
    _echo_json,
    _error,
    _open_store,
    _parse_meta,
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
from .errors import ArtifactNotFoundError, ArtifactStoreError
from .grid import SCOPES

if TYPE_CHECKING:
    from .models import ArtifactList
    from .store import ArtifactStore

__all__ = ["resolve_id"]


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
                raise click.UsageError(f"{path!r} is a directory: pass -r to store the files under it")
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
        raise click.UsageError(f"directory {str(directory)!r} does not exist: create it, or pick another --output")
    if target.is_dir():
        raise click.UsageError(f"{path!r} is a directory: give a file name, or several artifacts")
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
    found: list[str] = []
    cursor: str | None = None
    while len(found) < 2:  # the name may be the prefix of many others: page until two are found
        page = store.search(user_id=user, session_id=session, filename_prefix=name, limit=1000, cursor=cursor)
        found += [m.artifact_id for m in page if m.filename == name]
        cursor = page.next_cursor
        if cursor is None:
            break
    where = f" in session {session!r}" if session else f" of user {user!r}" if user else ""
    if not found:
        raise ArtifactNotFoundError(f"no artifact named {name!r}{where}")
    if len(found) > 1:
        raise click.UsageError(
            f"more than one artifact is named {name!r}{where} ({', '.join(found)}, …): get one by its id"
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
        raise click.UsageError(f"directory {output!r} does not exist: create it first")
    with _open_store() as store:
        ids = [resolve_id(store, a) for a in artifact_ids] + [_by_name(store, n, user, session) for n in names]
        metas = [store.metadata(a, user_id=user, session_id=session) for a in ids]
        targets: list[str | None] = [None] * len(ids)
        if to_dir:
            paths = [str(Path(str(output), m.filename or m.artifact_id)) for m in metas]
            twice = sorted({t for t in paths if paths.count(t) > 1})
            targets = list(paths)
            if twice:
                raise click.UsageError(f"several of these artifacts would be written to {twice[0]!r}")
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
    text: str | None = None,
    snippet: bool = False,
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
        text=text,
        snippet=snippet,  # the command refuses --snippet without TEXT before this
    )


@cli.command("ls")
@search_options
@catalog_options
def ls(as_json: bool, **filters: Any) -> None:
    """List live artifacts, oldest first, one page at a time (a session's with --session)."""
    with _open_store() as store:
        _print_listing(_find(store, by_session=True, **filters), as_json)


@cli.command()
@click.argument("words", nargs=-1, metavar="[TEXT]...")
@click.option("--snippet", is_flag=True, help="With TEXT: show where the words were found.")
@search_options
@catalog_options
def search(as_json: bool, words: tuple[str, ...], snippet: bool, **filters: Any) -> None:
    """Search live artifacts by text, user, session, scope, MIME prefix, meta and filename prefix.

    With TEXT, a full-text search: artifacts whose filename, summary, meta values or text content
    hold every word, best first.
    """
    if snippet and not words:
        raise click.UsageError("--snippet needs TEXT to search for")
    text = " ".join(words) if words else None
    with _open_store() as store:
        page = _find(store, by_session=False, text=text, snippet=snippet, **filters)
    if snippet and not as_json:
        for hit in page:
            click.echo(f"{hit.artifact_id}  {safe(hit.filename or '')}  {safe(getattr(hit, 'snippet', '') or '')}")
        if not page:
            click.echo("no artifacts")
        if page.next_cursor:
            click.echo(f"next cursor: {page.next_cursor}")
        return
    _print_listing(page, as_json)


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
