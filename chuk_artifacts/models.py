"""The public value types: artifact metadata, result pages and request objects."""

from __future__ import annotations

import enum
import functools
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterable, Callable, Final, Iterable, Iterator, Protocol, Union

from .errors import InvalidArgumentError

__all__ = [
    "ArtifactMetadata",
    "ArtifactList",
    "CleanupResult",
    "StreamUploadRequest",
    "StreamDownloadRequest",
    "MultipartUploadInitRequest",
    "MultipartUploadPart",
    "MultipartUploadCompleteRequest",
    "iso",
    "metadata_from_row",
    "SignedBlob",
    "ShareLink",
    "share_from_row",
]

ProgressCallback = Callable[[int, "int | None"], None]
#: A row of the catalog (artifact, session, upload) as the store passes it around: a plain dict.
Row = dict[str, Any]

#: A chunk of an upload: bytes, or a buffer that is copied into bytes.
Chunk = Union[bytes, bytearray, memoryview]


class BinaryReader(Protocol):
    """A binary file object, as far as an upload reads it."""

    def read(self, size: int, /) -> Chunk: ...


#: What ``StreamUploadRequest.data_stream`` may be (the async iterable through the async facade).
DataStream = Union[Iterable[Chunk], BinaryReader, AsyncIterable[Chunk]]


def iso(ts: float | None) -> str | None:
    """Epoch seconds → ISO 8601 in UTC (``...Z``), as the published package reports times."""
    if ts is None:
        return None
    return _iso(ts)


@functools.lru_cache(maxsize=4096)  # an artifact's times are read far more often than written
def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).isoformat().replace("+00:00", "Z")


@dataclass(frozen=True)
class ArtifactMetadata:
    """What the catalog knows about one artifact. Field names are the published package's."""

    artifact_id: str
    session_id: str | None
    sandbox_id: str
    key: str
    mime: str
    summary: str
    meta: dict[str, Any]
    filename: str | None
    bytes: int
    sha256: str
    stored_at: str
    ttl: int | None
    scope: str
    owner_id: str | None
    storage_provider: str
    session_provider: str
    updated_at: str
    expires_at: str | None
    version: int = 1

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    # Compatibility with code written for the published package (pydantic / dict results).
    model_dump = to_dict

    def __getitem__(self, name: str) -> Any:
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def get(self, name: str, default: Any = None) -> Any:
        return getattr(self, name, default)


def metadata_from_row(row: dict[str, Any]) -> ArtifactMetadata:
    """The public form of one catalog row of the ``artifacts`` table."""
    # Built without the frozen dataclass's ``__init__`` (a guarded ``setattr`` per field): this
    # runs for every artifact every read or listing returns. The fields are those of the class.
    metadata = object.__new__(ArtifactMetadata)
    metadata.__dict__.update(
        artifact_id=row["artifact_id"],
        session_id=row["session_id"],
        sandbox_id=row["sandbox_id"],
        key=row["key"],
        mime=row["mime"],
        summary=row["summary"],
        meta=dict(row["meta"] or {}),
        filename=row["filename"],
        bytes=row["bytes"],
        sha256=row["sha256"],
        stored_at=iso(row["stored_at"]),
        ttl=row["ttl"],
        scope=row["scope"],
        owner_id=row["owner_id"],
        storage_provider=row["storage_provider"],
        session_provider=row["session_provider"],
        updated_at=iso(row["updated_at"]),
        expires_at=iso(row["expires_at"]),
        version=row["version"],
    )
    return metadata


@dataclass(frozen=True)
class SearchHit(ArtifactMetadata):
    """An artifact found by a full-text search (``search(text=...)``): its metadata, its
    ``rank`` (lower is better: bm25 on SQLite, minus ``ts_rank`` on PostgreSQL; comparable
    within one search only) and, if asked for, a ``snippet`` with the matched words between
    ``«`` and ``»`` (plain text, not escaped for HTML)."""

    rank: float = 0.0
    snippet: str | None = None


def hit_from_row(row: dict[str, Any]) -> SearchHit:
    """The public form of one row of a full-text search."""
    hit = object.__new__(SearchHit)
    hit.__dict__.update(metadata_from_row(row).__dict__)
    snippet = row.get("snippet")
    hit.__dict__.update(rank=float(row["rank"]), snippet=snippet.strip() if isinstance(snippet, str) else None)
    return hit


@dataclass(frozen=True)
class SignedBlob:
    """An artifact a signed URL names, as a gateway serves it: its metadata, and ``read(start,
    end, chunk_size)``, an iterator over the bytes in ``[start, end)``."""

    metadata: ArtifactMetadata
    read: Callable[[int, int, int], Iterator[bytes]]


@dataclass(frozen=True)
class ShareLink:
    """A share link (``store.share``). ``url`` holds the link's secret token and is known only
    when the link is created (the catalog keeps just a hash of it); listings give ``None``.

    ``state`` is ``active``, ``revoked``, ``expired``, ``exhausted`` (``downloads`` reached
    ``max_downloads``) or ``locked`` (too many wrong passwords), as of when it was read.
    """

    share_id: str
    artifact_id: str
    url: str | None
    created_at: str
    expires_at: str
    max_downloads: int | None
    downloads: int
    created_by: str | None
    session_id: str | None
    disposition: str
    has_password: bool
    revoked_at: str | None
    last_used_at: str | None
    state: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def share_from_row(row: dict[str, Any], *, url: str | None = None, state: str = "active") -> ShareLink:
    """The public form of one row of the ``shares`` table."""
    return ShareLink(
        share_id=row["share_id"],
        artifact_id=row["artifact_id"],
        url=url,
        created_at=_iso(row["created_at"]),
        expires_at=_iso(row["expires_at"]),
        max_downloads=row["max_downloads"],
        downloads=row["downloads"],
        created_by=row["created_by"],
        session_id=row["created_session"],
        disposition=row["disposition"],
        has_password=row["password_hash"] is not None,
        revoked_at=iso(row["revoked_at"]),
        last_used_at=iso(row["last_used_at"]),
        state=state,
    )


class ArtifactList(list[ArtifactMetadata]):
    """A page of results: a plain list plus ``next_cursor`` (``None`` on the last page)."""

    next_cursor: str | None

    def __init__(self, items: Iterable[ArtifactMetadata] = (), next_cursor: str | None = None) -> None:
        super().__init__(items)
        self.next_cursor = next_cursor


class CleanupResult(int):
    """How much a cleanup removed. Its int value is the total count, as the published package returned."""

    artifacts: int
    sessions: int
    uploads: int
    bytes: int

    def __new__(cls, artifacts: int = 0, sessions: int = 0, uploads: int = 0, bytes: int = 0) -> CleanupResult:
        obj = super().__new__(cls, artifacts + sessions + uploads)
        obj.artifacts, obj.sessions, obj.uploads, obj.bytes = artifacts, sessions, uploads, bytes
        return obj

    def __repr__(self) -> str:
        return (
            f"CleanupResult(artifacts={self.artifacts}, sessions={self.sessions}, "
            f"uploads={self.uploads}, bytes={self.bytes})"
        )

    def to_dict(self) -> dict[str, int]:
        return {
            "artifacts": self.artifacts,
            "sessions": self.sessions,
            "uploads": self.uploads,
            "bytes": self.bytes,
        }


class _Default(enum.Enum):
    """The type of ``_DEFAULT``: "argument not given", where ``None`` means something else."""

    DEFAULT = "DEFAULT"

    def __repr__(self) -> str:
        return "<default>"


_DEFAULT: Final = _Default.DEFAULT
#: A ``ttl`` argument: seconds, ``None`` (never expires) or not given (the store's default).
Ttl = Union[int, None, _Default]


def _text(value: object, what: str) -> None:
    if not isinstance(value, str) or not value:
        raise InvalidArgumentError(f"{what} must be a non-empty string, not {value!r}")


def _count(value: object, what: str, low: int, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"from {low} to {high}" if high is not None else f"of at least {low}"
        raise InvalidArgumentError(f"{what} must be an integer {bound}, not {value!r}")


def _optional_count(value: object, what: str) -> None:
    if value is not None:
        _count(value, what, 0)


def _check_ttl(ttl: object) -> None:
    if ttl is not _DEFAULT and ttl is not None:
        _count(ttl, "ttl", 1)


def _check_scope(scope: object) -> None:
    if scope not in ("session", "user", "sandbox"):
        raise InvalidArgumentError(f"scope must be one of session, user, sandbox, not {scope!r}")


# The request objects are frozen and check their fields when built, as the published package's
# pydantic models do: a bad value fails where it is written, with InvalidArgumentError (a
# ValueError, like pydantic's ValidationError). The store checks the rest (ids, MIME syntax, meta).


@dataclass(frozen=True)
class StreamUploadRequest:
    """A streaming upload. ``data_stream``: an iterable of bytes, a binary file object, or
    (through the async facade) an async iterable of bytes."""

    data_stream: DataStream
    mime: str
    summary: str = ""
    filename: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    scope: str = "session"
    ttl: Ttl = _DEFAULT
    meta: dict[str, Any] | None = None
    content_length: int | None = None
    progress_callback: ProgressCallback | None = None
    chunk_size: int = 65536

    def __post_init__(self) -> None:
        _text(self.mime, "mime")
        if not isinstance(self.summary, str):
            raise InvalidArgumentError("summary must be a string")
        _check_scope(self.scope)
        _check_ttl(self.ttl)
        _optional_count(self.content_length, "content_length")
        _count(self.chunk_size, "chunk_size", 1)


@dataclass(frozen=True)
class StreamDownloadRequest:
    """A streaming download of ``artifact_id``, optionally of the byte range [start, end)."""

    artifact_id: str
    user_id: str | None = None
    session_id: str | None = None
    chunk_size: int = 65536
    progress_callback: ProgressCallback | None = None
    start: int | None = None
    end: int | None = None

    def __post_init__(self) -> None:
        _text(self.artifact_id, "artifact_id")
        _count(self.chunk_size, "chunk_size", 1)
        _optional_count(self.start, "start")
        _optional_count(self.end, "end")


@dataclass(frozen=True)
class MultipartUploadInitRequest:
    filename: str
    mime_type: str = "application/octet-stream"
    user_id: str | None = None
    session_id: str | None = None
    scope: str = "session"
    ttl: Ttl = _DEFAULT
    meta: dict[str, Any] | None = None
    summary: str = ""

    def __post_init__(self) -> None:
        _text(self.filename, "filename")
        _text(self.mime_type, "mime_type")
        _check_scope(self.scope)
        _check_ttl(self.ttl)


@dataclass(frozen=True)
class MultipartUploadPart:
    """A part as S3 names it: ``PartNumber`` (1–10000) and the ``ETag`` its upload returned."""

    PartNumber: int
    ETag: str

    def __post_init__(self) -> None:
        _count(self.PartNumber, "PartNumber", 1, 10000)
        _text(self.ETag, "ETag")


@dataclass(frozen=True)
class MultipartUploadCompleteRequest:
    """``parts``: at least one ``MultipartUploadPart`` (or a dict with ``PartNumber`` and ``ETag``)."""

    upload_id: str
    parts: list[MultipartUploadPart] = field(default_factory=list)
    summary: str | None = None
    user_id: str | None = None
    session_id: str | None = None

    def __post_init__(self) -> None:
        _text(self.upload_id, "upload_id")
        if isinstance(self.parts, (str, bytes)) or not hasattr(self.parts, "__iter__"):
            raise InvalidArgumentError("parts must be a list of MultipartUploadPart")
        parts = [p if isinstance(p, MultipartUploadPart) else _part(p) for p in self.parts]
        if not parts:
            raise InvalidArgumentError("parts must list at least one part")
        object.__setattr__(self, "parts", parts)  # a private copy: the caller's list may change later


def _part(value: object) -> MultipartUploadPart:
    if isinstance(value, dict) and set(value) == {"PartNumber", "ETag"}:
        return MultipartUploadPart(value["PartNumber"], value["ETag"])
    raise InvalidArgumentError(f"a part must be a MultipartUploadPart or a dict of PartNumber and ETag, not {value!r}")


def check_request(request: object, cls: type, method: str) -> None:
    """``InvalidArgumentError`` unless ``request`` is a ``cls``."""
    if not isinstance(request, cls):
        raise InvalidArgumentError(f"{method} takes a {cls.__name__}, not {type(request).__name__}")


def chunks_of(stream: object, chunk_size: int) -> Iterator[bytes]:
    """Yield bytes from an iterable of bytes or a binary file object (anything else in it is an
    ``InvalidArgumentError``)."""
    if hasattr(stream, "read"):
        while chunk := stream.read(chunk_size):
            yield _chunk_bytes(chunk)
        return
    if isinstance(stream, (str, bytes, bytearray, memoryview)) or not hasattr(stream, "__iter__"):
        raise InvalidArgumentError("data_stream must be an iterable of bytes or a binary file object")
    for chunk in stream:
        if chunk:
            yield _chunk_bytes(chunk)


def _chunk_bytes(chunk: object) -> bytes:
    if isinstance(chunk, bytes):
        return chunk
    if isinstance(chunk, (bytearray, memoryview)):
        return bytes(chunk)
    raise InvalidArgumentError(f"data_stream gave a {type(chunk).__name__}, not bytes (open files in binary mode)")
