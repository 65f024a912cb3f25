"""Share links: revocable, expiring, counted URLs for one artifact, on every backend.

A link is a row of the ``shares`` table. Its URL, ``{public_url}/s/{token}``, carries a random
token of 256 bits that is shown once; the catalog keeps only its sha256, so a copy of the catalog
opens nothing. The gateway (``gateway.serve_share``) opens a link with ``open_share``: every
refusal (unknown, revoked, expired, used up, locked, artifact gone or expired) reads one row and
changes nothing, and a download is counted by one conditional ``UPDATE`` that only succeeds
under the limit, so a limit of N gives exactly N downloads however many requests race, in one
process or in many sharing a PostgreSQL catalog.

Who may do what: creating a link needs read access to the artifact; a link opens only while its
creator could still read the artifact; a caller lists the links they created (the application:
all of them); revoking needs to be the creator, a caller who may change the artifact, or the
application.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import math
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from . import grid
from .access import Caller
from .core import StoreCore
from .errors import (
    AccessDeniedError,
    ArtifactNotFoundError,
    InvalidArgumentError,
    ShareGoneError,
    SharePasswordError,
)
from .events import reports_denials
from .models import ArtifactMetadata, Row, ShareLink, metadata_from_row, share_from_row
from .streaming import read_range

__all__ = [
    "ShareMethods",
    "OpenedShare",
    "MAX_SHARE_SECONDS",
    "MAX_PASSWORD_FAILURES",
    "REDIRECT_SECONDS",
    "hash_password",
    "check_password",
]

#: The longest a link may live (a year).
MAX_SHARE_SECONDS = 365 * 86400
#: Wrong passwords a link takes; after that it refuses every request (``ShareGoneError``).
MAX_PASSWORD_FAILURES = 10
#: Lifetime of the presigned URL a link redirects to on S3 / COS (never past the link's expiry).
REDIRECT_SECONDS = 60
_MAX_DOWNLOADS = 10**9
_MAX_PASSWORD = 1024
_TOKEN = re.compile(r"[A-Za-z0-9_-]{43}")  # secrets.token_urlsafe(32)
_DISPOSITIONS = ("attachment", "inline")
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    """``scrypt$n$r$p$salt$hash`` of ``password`` with a fresh random salt (stdlib scrypt)."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, dklen=32, maxmem=64 * 1024 * 1024, **_SCRYPT)
    b64 = base64.urlsafe_b64encode
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    """Does ``password`` match ``stored``? The digests are compared in constant time."""
    try:
        _, n, r, p, salt, digest = stored.split("$")
        expected = base64.urlsafe_b64decode(digest)
        actual = hashlib.scrypt(
            password.encode(),
            salt=base64.urlsafe_b64decode(salt),
            n=int(n),
            r=int(r),
            p=int(p),
            dklen=len(expected),
            maxmem=64 * 1024 * 1024,
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def share_state(row: Row, now: float) -> str:
    """``active``, or why the link no longer opens: ``revoked``, ``expired``, ``exhausted``, ``locked``."""
    if row["revoked_at"] is not None:
        return "revoked"
    if row["expires_at"] <= now:
        return "expired"
    if row["max_downloads"] is not None and row["downloads"] >= row["max_downloads"]:
        return "exhausted"
    if row["failed_attempts"] >= MAX_PASSWORD_FAILURES:
        return "locked"
    return "active"


_GONE = {
    "revoked": "this share link has been revoked",
    "expired": "this share link has expired",
    "exhausted": "this share link has reached its download limit",
    "locked": "this share link is locked after too many wrong passwords",
}


@dataclass(frozen=True)
class ShareDownload:
    """What one counted download serves: ``chunks`` of the bytes, or (S3 / COS) ``redirect``,
    a fresh short-lived presigned URL to send the client to."""

    chunks: Iterator[bytes] | None = None
    redirect: str | None = None


@dataclass(frozen=True)
class OpenedShare:
    """A link that opens, and its artifact (``open_share``). Nothing has been counted yet:
    ``download(start, end, chunk_size)`` counts one download and serves it, or raises
    ``ShareGoneError`` when the link was used up or revoked meanwhile."""

    share: ShareLink
    metadata: ArtifactMetadata
    download: Callable[[int, int, int], ShareDownload]


def _check_expires(expires: Any) -> int:
    if isinstance(expires, bool) or not isinstance(expires, (int, float)) or not math.isfinite(expires):
        raise InvalidArgumentError(f"expires must be a number of seconds from 1 to {MAX_SHARE_SECONDS}")
    if not 1 <= expires <= MAX_SHARE_SECONDS:
        raise InvalidArgumentError(f"expires must be a number of seconds from 1 to {MAX_SHARE_SECONDS}")
    return int(math.ceil(expires))


def _check_max_downloads(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= _MAX_DOWNLOADS:
        raise InvalidArgumentError(f"max_downloads must be None (no limit) or an integer from 1 to {_MAX_DOWNLOADS}")
    return value


def _check_password(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > _MAX_PASSWORD:
        raise InvalidArgumentError(f"password must be None or a non-empty string of at most {_MAX_PASSWORD} characters")
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidArgumentError("password must be valid Unicode text (it has a lone surrogate)") from None
    return value


class ShareMethods(StoreCore):
    """``share``, ``list_shares``, ``revoke_share`` and ``open_share`` for ``ArtifactStore``."""

    @reports_denials
    def share(
        self,
        artifact_id: str,
        *,
        expires: int = 86400,
        max_downloads: int | None = None,
        password: str | None = None,
        disposition: str = "attachment",
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> ShareLink:
        """A share link to the artifact: its URL opens for ``expires`` seconds (and while the
        artifact lives), at most ``max_downloads`` times (``None``: no limit), with HTTP Basic
        ``password`` if given, until revoked. ``disposition``: ``attachment`` (download) or
        ``inline`` (shown in the browser). The caller must be allowed to read the artifact.

        The returned ``ShareLink.url`` holds the link's secret; it is not stored and cannot be
        shown again.
        """
        seconds = _check_expires(expires)
        limit = _check_max_downloads(max_downloads)
        secret = _check_password(password)
        if disposition not in _DISPOSITIONS:
            raise InvalidArgumentError(f"disposition must be one of {', '.join(_DISPOSITIONS)}")
        caller = self.policy.caller(user_id, session_id)
        row = self.policy.accessible(artifact_id, user_id, session_id)
        token = secrets.token_urlsafe(32)
        now = time.time()
        values: Row = {
            "share_id": uuid.uuid4().hex,
            "token_hash": _token_hash(token),
            "sandbox_id": self.sandbox_id,
            "artifact_id": row["artifact_id"],
            "created_by": caller.user_id,
            "created_session": caller.session_id,
            "created_at": now,
            "expires_at": now + seconds,
            "max_downloads": limit,
            "downloads": 0,
            "password_hash": hash_password(secret) if secret is not None else None,
            "failed_attempts": 0,
            "disposition": disposition,
            "revoked_at": None,
            "last_used_at": None,
        }
        from sqlalchemy.exc import IntegrityError

        try:
            self.catalog.insert_share(values)
        except IntegrityError:  # the artifact was deleted since it was read
            raise ArtifactNotFoundError(f"artifact {artifact_id!r} not found") from None
        link = share_from_row(values, url=f"{self.settings.public_url}/s/{token}")
        self.events.emit("share_created", share=link, caller=caller)
        return link

    @reports_denials
    def list_shares(
        self,
        artifact_id: str | None = None,
        *,
        include_inactive: bool = False,
        limit: int = 100,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> list[ShareLink]:
        """The caller's links, newest first (the application's: every link of the sandbox);
        only those of ``artifact_id`` if given; revoked, expired, used-up and locked links only
        with ``include_inactive=True``. URLs are not shown (``url`` is ``None``)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 10_000:
            raise InvalidArgumentError("limit must be an integer from 1 to 10000")
        if artifact_id is not None:
            grid.validate_id(artifact_id, "artifact_id")
        caller = self.policy.caller(user_id, session_id)
        now = time.time()
        rows = self.catalog.find_shares(
            self.sandbox_id,
            created_by=caller.user_id,
            created_session=caller.session_id,
            admin=caller.is_admin,
            artifact_id=artifact_id,
            live_at=None if include_inactive else now,
            limit=limit,
            reader_session=caller.session_id,
        )
        # ``live_at`` leaves locked links in (a rare state): filtered here
        links = [share_from_row(r, state=share_state(r, now)) for r in rows]
        return links if include_inactive else [link for link in links if link.state == "active"]

    @reports_denials
    def revoke_share(self, share_id: str, *, user_id: str | None = None, session_id: str | None = None) -> bool:
        """Revoke a link: its next request is refused (410). ``False`` if there was no such
        link or it was revoked already. Allowed to its creator, to a caller who may change the
        artifact, and to the application."""
        grid.validate_id(share_id, "share_id")
        caller = self.policy.caller(user_id, session_id)
        row = self.catalog.share(share_id)
        if row is None or row["sandbox_id"] != self.sandbox_id:
            return False
        if not self._may_revoke(row, caller):
            raise AccessDeniedError(f"access denied: cannot revoke share {share_id!r}")
        now = time.time()
        if not self.catalog.revoke_share(share_id, now):
            return False
        revoked = {**row, "revoked_at": now}
        self.events.emit("share_revoked", share=share_from_row(revoked, state="revoked"), caller=caller)
        return True

    def _may_revoke(self, row: Row, caller: Caller) -> bool:
        """The application, the link's creator while it may still read the artifact (a link
        to a session-scoped artifact only from that session), or one who may change it."""
        if caller.is_admin:
            return True
        try:
            artifact = self.policy.load(row["artifact_id"], allow_expired=True)
        except ArtifactNotFoundError:
            return False
        for write in (False, True):
            if write or _created_by(row, caller):
                try:
                    self.policy.require(artifact, caller, write=write)
                except AccessDeniedError:
                    continue
                return True
        return False

    def open_share(self, token: str, *, password: str | None = None) -> OpenedShare:
        """The link ``token`` names and its artifact, if the link opens now (for gateways).

        Raises ``ArtifactNotFoundError`` for an unknown token or an artifact that is gone,
        ``ArtifactExpiredError`` for an expired artifact, ``ShareGoneError`` for a revoked,
        expired, used-up or locked link, ``SharePasswordError`` for a missing or wrong password
        (a wrong one is counted against the link). Nothing else is changed, and nothing is
        counted until ``download`` is called.
        """
        if not isinstance(token, str) or not _TOKEN.fullmatch(token):
            raise ArtifactNotFoundError("share link not found")
        row = self.catalog.share_by_token(_token_hash(token))
        if row is None or row["sandbox_id"] != self.sandbox_id:
            raise ArtifactNotFoundError("share link not found")
        now = time.time()
        state = share_state(row, now)
        if state != "active":
            raise ShareGoneError(_GONE[state], state)
        artifact = self.policy.load(row["artifact_id"])
        try:  # the creator's access, checked again: a link is never more than its creator's read
            creator, session = row["created_by"], row["created_session"]
            # (through the policy, so a creator's session counts only while it is live)
            who = Caller() if creator is None and session is None else self.policy.caller(creator, session, slide=False)
            self.policy.require(artifact, who, write=False)
        except AccessDeniedError:
            raise ArtifactNotFoundError("share link not found") from None
        if row["password_hash"] is not None:
            if password is None:
                raise SharePasswordError("this share link needs a password", required=True)
            if not check_password(password, row["password_hash"]):
                if not self.catalog.fail_share_password(row["share_id"], MAX_PASSWORD_FAILURES):
                    raise ShareGoneError(_GONE["locked"], "locked")
                raise SharePasswordError("wrong password for this share link")
        link = share_from_row(row)

        def download(start: int, end: int, chunk_size: int) -> ShareDownload:
            return self._download(row, artifact, start, end, chunk_size)

        return OpenedShare(link, metadata_from_row(artifact), download)

    def _download(self, row: Row, artifact: Row, start: int, end: int, chunk_size: int) -> ShareDownload:
        share_id = row["share_id"]
        now = time.time()
        downloads = self.catalog.claim_share(share_id, now, MAX_PASSWORD_FAILURES)
        if downloads is None:
            current = self.catalog.share(share_id)
            if current is None:
                raise ArtifactNotFoundError("share link not found")
            state = share_state(current, now)
            raise ShareGoneError(_GONE.get(state, _GONE["exhausted"]), state if state != "active" else "exhausted")
        used = {**row, "downloads": downloads, "last_used_at": now}
        try:
            if self.blobs.native_presign:
                seconds = max(1, min(REDIRECT_SECONDS, math.ceil(row["expires_at"] - now)))
                url = self.presigner.download_url({**artifact, "disposition": row["disposition"]}, seconds)
                result = ShareDownload(redirect=url)
            else:
                result = ShareDownload(chunks=self._read_share(artifact, start, end, chunk_size))
        except BaseException:
            self.catalog.unclaim_share(share_id)
            raise
        self.events.emit("share_used", share=share_from_row(used, state=share_state(used, now)))
        return result

    def _read_share(self, artifact: Row, start: int, end: int, chunk_size: int) -> Iterator[bytes]:
        return read_range(
            self.blobs,
            artifact,
            start,
            end,
            chunk_size,
            verify_reads=self.settings.verify_reads,
            missing=self.policy.missing_bytes,
        )


def _created_by(row: Row, caller: Caller) -> bool:
    if caller.user_id is not None:
        return bool(row["created_by"] == caller.user_id)
    return row["created_by"] is None and bool(row["created_session"] == caller.session_id)
