"""Grid keys and the validation of every id and name that can reach a key or a header.

Keys are deterministic: ``grid/{sandbox}/sessions/{session}/{artifact}``,
``grid/{sandbox}/users/{user}/{artifact}`` and ``grid/{sandbox}/shared/{artifact}``.
Ids come from a small ASCII alphabet without ``/`` or ``..``, so no id can leave its prefix;
a filename is metadata and never becomes part of a key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, Collection, Iterator

from .errors import InvalidArgumentError

__all__ = [
    "GridKey",
    "SCOPES",
    "validate_id",
    "make_key",
    "parse_grid_key",
    "session_prefix",
    "grid_prefix",
    "staging_key",
    "uploads_prefix",
    "parts_prefix",
    "part_key",
    "arriving_part_key",
    "staged_key",
    "QUARANTINE_PREFIX",
    "quarantine_prefix",
    "health_probe_key",
]

SCOPES = ("session", "user", "sandbox")
MAX_ID_LENGTH = 128
MAX_FILENAME_LENGTH = 1024
#: Filenames are indexed: PostgreSQL's btree entries hold at most ~2,700 bytes, so a filename is
#: also capped in UTF-8 bytes, on every catalog alike (1,024 ASCII characters, fewer beyond).
MAX_FILENAME_BYTES = 1024
MAX_SUMMARY_LENGTH = 65536
#: How deeply meta may nest (objects and arrays). Deeper values are refused with a clear error
#: instead of exhausting the interpreter's recursion limit (``RecursionError``) in the encoder.
MAX_META_DEPTH = 64
#: The most top-level entries a search's ``meta_filter`` may have: each is a condition, and a
#: query must stay cheap to plan as well as to run.
MAX_META_FILTER_ENTRIES = 64

_ID = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@+=~|:-]*")
_MIME = re.compile(r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]*/[A-Za-z0-9!#$&^_.+*-]+(;[ -~]*)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def validate_id(value: object, what: str = "id") -> str:
    """Return ``value`` if it is a safe id, else raise ``InvalidArgumentError`` saying why."""
    if not isinstance(value, str):
        raise InvalidArgumentError(f"{what} must be a string, not {type(value).__name__}")
    if not value:
        raise InvalidArgumentError(f"{what} must not be empty")
    if len(value) > MAX_ID_LENGTH:
        raise InvalidArgumentError(f"{what} is longer than {MAX_ID_LENGTH} characters")
    if ".." in value or not _ID.fullmatch(value):
        raise InvalidArgumentError(
            f"{what} {value!r} is not valid: use letters, digits and _ . @ + = ~ | : - "
            "(no '/', no '..', no spaces or control characters)"
        )
    return value


def validate_scope(scope: object) -> str:
    if not isinstance(scope, str) or scope not in SCOPES:
        raise InvalidArgumentError(f"scope must be one of {', '.join(SCOPES)}, not {scope!r}")
    return scope


def validate_text(text: str, what: str) -> str:
    """Text every catalog can store: UTF-8 encodable (no lone surrogates) and without NUL,
    which PostgreSQL refuses — so every backend refuses it alike."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidArgumentError(f"{what} must be valid Unicode text (no lone surrogates)") from None
    if "\x00" in text:
        raise InvalidArgumentError(f"{what} must not contain NUL characters")
    return text


def _json_strings(value: object) -> Iterator[str]:
    """Every key and string value inside a JSON value."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield k
            yield from _json_strings(v)
    elif isinstance(value, (list, tuple)):
        for v in value:
            yield from _json_strings(v)


def validate_filename(filename: object) -> str | None:
    """Filenames are metadata: any text without control characters, ``..`` or absolute paths."""
    if filename is None:
        return None
    if not isinstance(filename, str):
        raise InvalidArgumentError("filename must be a string")
    if not filename or len(filename) > MAX_FILENAME_LENGTH:
        raise InvalidArgumentError(f"filename must be 1 to {MAX_FILENAME_LENGTH} characters")
    if len(filename.encode("utf-8", "surrogatepass")) > MAX_FILENAME_BYTES:
        raise InvalidArgumentError(f"filename must be at most {MAX_FILENAME_BYTES} bytes in UTF-8")
    if _CONTROL.search(filename):
        raise InvalidArgumentError("filename must not contain control characters")
    if filename.startswith(("/", "\\")) or "\\" in filename:
        raise InvalidArgumentError("filename must be relative and use '/' as separator")
    if any(part in ("..", ".") for part in filename.split("/")):
        raise InvalidArgumentError("filename must not contain '.' or '..' path segments")
    return validate_text(filename, "filename")


def validate_mime(mime: object) -> str:
    if not isinstance(mime, str) or len(mime) > 255 or not _MIME.fullmatch(mime):
        raise InvalidArgumentError(f"mime must be a MIME type such as 'text/plain', not {mime!r}")
    return mime


def validate_summary(summary: object) -> str:
    if not isinstance(summary, str):
        raise InvalidArgumentError("summary must be a string")
    if len(summary) > MAX_SUMMARY_LENGTH:
        raise InvalidArgumentError(f"summary is longer than {MAX_SUMMARY_LENGTH} characters")
    return validate_text(summary, "summary")


def _check_shape(meta: dict[str, Any], max_bytes: int) -> None:
    """Refuse values nested deeper than ``MAX_META_DEPTH`` or with more containers and items
    than ``max_bytes`` (each takes at least one byte of JSON), before anything recurses into
    them: a self-referencing or widely shared structure is refused here in bounded time."""
    stack: list[tuple[object, int]] = [(meta, 1)]
    seen = 0
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict):
            children: Collection[object] = value.values()
        elif isinstance(value, (list, tuple)):
            children = value
        else:
            continue
        if depth > MAX_META_DEPTH:
            raise InvalidArgumentError(f"meta is nested deeper than {MAX_META_DEPTH} levels")
        seen += len(children) + 1
        if seen > max_bytes:
            raise InvalidArgumentError(f"meta is larger than {max_bytes} bytes once encoded as JSON")
        stack.extend((child, depth + 1) for child in children)


def validate_meta(meta: object, max_bytes: int) -> dict[str, Any]:
    """User metadata: a JSON object of at most ``max_bytes`` once encoded, nested at most
    ``MAX_META_DEPTH`` levels."""
    if meta is None:
        return {}
    if not isinstance(meta, dict) or not all(isinstance(k, str) for k in meta):
        raise InvalidArgumentError("meta must be a dict with string keys")
    if any(not k or len(k) > 255 for k in meta):
        raise InvalidArgumentError("meta keys must be 1 to 255 characters")
    _check_shape(meta, max_bytes)
    try:
        encoded = json.dumps(meta, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError) as exc:
        raise InvalidArgumentError(f"meta must be JSON-serialisable: {exc}") from None
    for text in _json_strings(meta):
        validate_text(text, "meta")
    if len(encoded.encode()) > max_bytes:
        raise InvalidArgumentError(f"meta is larger than {max_bytes} bytes once encoded as JSON")
    copy: dict[str, Any] = json.loads(encoded)  # a private copy with JSON types only
    return copy


def merge_meta(base: dict[str, Any], extra: dict[str, Any], max_bytes: int) -> dict[str, Any]:
    """``base`` updated with ``extra``, both valid metadata already (``validate_meta``, or as
    the catalog keeps it): their merge can only break the size limit, so that alone is checked."""
    merged = {**base, **extra}
    encoded = json.dumps(merged, allow_nan=False, separators=(",", ":"))  # ASCII: len is bytes
    if len(encoded) > max_bytes:
        raise InvalidArgumentError(f"meta is larger than {max_bytes} bytes once encoded as JSON")
    return merged


@dataclass(frozen=True)
class GridKey:
    """A parsed grid key. ``session_id`` / ``user_id`` are set for their scope only."""

    sandbox_id: str
    scope: str
    artifact_id: str
    session_id: str | None = None
    user_id: str | None = None

    @property
    def key(self) -> str:
        return make_key(self.sandbox_id, self.scope, self.artifact_id, self.session_id, self.user_id)


def make_key(
    sandbox_id: str,
    scope: str,
    artifact_id: str,
    session_id: str | None = None,
    user_id: str | None = None,
) -> str:
    """Build the grid key of an artifact; every component is validated first."""
    validate_id(sandbox_id, "sandbox_id")
    validate_id(artifact_id, "artifact_id")
    if scope == "session":
        return f"grid/{sandbox_id}/sessions/{validate_id(session_id, 'session_id')}/{artifact_id}"
    if scope == "user":
        return f"grid/{sandbox_id}/users/{validate_id(user_id, 'user_id')}/{artifact_id}"
    if scope == "sandbox":
        return f"grid/{sandbox_id}/shared/{artifact_id}"
    raise InvalidArgumentError(f"unknown scope {scope!r}")


def parse_grid_key(key: str) -> GridKey:
    """Split a grid key into its parts; raise ``InvalidArgumentError`` for anything else."""
    if not isinstance(key, str):
        raise InvalidArgumentError("grid key must be a string")
    parts = key.split("/")
    try:
        if parts[0] == "grid" and len(parts) == 5 and parts[2] == "sessions":
            parsed = GridKey(parts[1], "session", parts[4], session_id=parts[3])
        elif parts[0] == "grid" and len(parts) == 5 and parts[2] == "users":
            parsed = GridKey(parts[1], "user", parts[4], user_id=parts[3])
        elif parts[0] == "grid" and len(parts) == 4 and parts[2] == "shared":
            parsed = GridKey(parts[1], "sandbox", parts[3])
        else:
            raise InvalidArgumentError(f"not a grid key: {key!r}")
        if parsed.key != key:  # validates every component
            raise InvalidArgumentError(f"not a grid key: {key!r}")
    except InvalidArgumentError as exc:
        raise InvalidArgumentError(f"not a valid grid key: {key!r} ({exc})") from None
    return parsed


# -- the other key layouts -------------------------------------------------------------------
# Every object key the store writes is built here. Artifacts live at their grid key; what is
# on its way to becoming an artifact lives beside it or under ``_uploads/``.


def session_prefix(sandbox_id: str, session_id: str) -> str:
    """The key prefix of a session's session-scoped artifacts."""
    return f"grid/{validate_id(sandbox_id, 'sandbox_id')}/sessions/{validate_id(session_id, 'session_id')}/"


def grid_prefix(sandbox_id: str) -> str:
    """The key prefix of every artifact of a sandbox."""
    return f"grid/{sandbox_id}/"


def staging_key(key: str) -> str:
    """Where ``update_file`` writes new bytes before they replace those at ``key``."""
    import uuid

    return f"{key}~{uuid.uuid4().hex[:16]}"


def uploads_prefix(sandbox_id: str) -> str:
    """The key prefix of every upload's own objects in a sandbox (parts, native PUTs)."""
    return f"_uploads/{sandbox_id}/"


def parts_prefix(sandbox_id: str, upload_id: str) -> str:
    """The key prefix of one upload's own objects."""
    return f"{uploads_prefix(sandbox_id)}{upload_id}/"


def normal_etag(etag: Any) -> str:
    """An ETag without quotes or surrounding blanks."""
    if not isinstance(etag, str):
        raise InvalidArgumentError("ETag must be a string")
    return etag.strip().strip('"')


def part_key(sandbox_id: str, upload_id: str, part_number: int, etag: str) -> str:
    """Where a part lives: named by its number and its content's ETag, so a part uploaded again
    with other bytes goes to another key and never changes the bytes a completion assembles."""
    return f"{parts_prefix(sandbox_id, upload_id)}{part_number:05d}-{normal_etag(etag)}"


def arriving_part_key(sandbox_id: str, upload_id: str, part_number: int, token: str) -> str:
    """Where a part is received before it is renamed after its content (``part_key``)."""
    return f"{parts_prefix(sandbox_id, upload_id)}{part_number:05d}.{token}"


def staged_key(sandbox_id: str, upload_id: str) -> str:
    """Where a natively presigned PUT (``Blobs.native_presign``) lands. Registration copies it to
    the artifact's key, so a URL still valid afterwards can never change registered bytes."""
    return f"{parts_prefix(sandbox_id, upload_id)}object"


#: Where ``fsck --repair`` moves what it takes out of the way (``_quarantine/<UTC timestamp>/<key>``).
QUARANTINE_PREFIX = "_quarantine/"


def quarantine_prefix(stamp: str) -> str:
    """The folder of one ``fsck --repair`` run."""
    return f"{QUARANTINE_PREFIX}{stamp}/"


def health_probe_key(token: str) -> str:
    """The small object ``validate_configuration`` writes, reads back and deletes."""
    return f"_chuk/health-{token}"
