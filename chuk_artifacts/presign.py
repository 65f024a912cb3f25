"""Presigned download URLs: the store's ``presign*`` methods (the caller needs read access).

Presigners are plugins (hook ``presigner``; interface ``interfaces.Presigner``). The built-in one,
``signing.HmacPresigner``, signs gateway URLs that ``chuk_artifacts.gateway.make_app(store)``
serves; S3-style backends presign natively (``s3.S3Presigner``).
"""

from __future__ import annotations

import math
import time
from typing import Any

from .core import StoreCore
from .errors import InvalidArgumentError
from .events import reports_denials
from .interfaces import Presigner
from .signing import HmacPresigner

__all__ = ["Presigner", "HmacPresigner", "PresignMethods", "MAX_EXPIRES", "check_expires"]

MAX_EXPIRES = 7 * 86400  # as S3 SigV4 allows


def check_expires(expires: Any) -> int:
    if isinstance(expires, bool) or not isinstance(expires, int) or not 1 <= expires <= MAX_EXPIRES:
        raise InvalidArgumentError(f"expires must be an integer number of seconds from 1 to {MAX_EXPIRES}")
    return expires


class PresignMethods(StoreCore):
    """Download URLs for ``ArtifactStore``; the caller needs read access to the artifact."""

    @reports_denials
    def presign(
        self,
        artifact_id: str,
        expires: int = 3600,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
    ) -> str:
        """A URL that downloads the artifact for ``expires`` seconds, without credentials — never
        past the artifact's own expiry (the URL's lifetime is cut to what is left of its TTL)."""
        expires = check_expires(expires)
        row = self.policy.accessible(artifact_id, user_id, session_id)
        if row["expires_at"] is not None:
            expires = max(1, min(expires, math.floor(row["expires_at"] - time.time())))
        return self.presigner.download_url(row, expires)

    @reports_denials
    def presign_short(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> str:
        """A 15-minute download URL."""
        return self.presign(artifact_id, 900, user_id=user_id, session_id=session_id)

    @reports_denials
    def presign_medium(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> str:
        """A 1-hour download URL."""
        return self.presign(artifact_id, 3600, user_id=user_id, session_id=session_id)

    @reports_denials
    def presign_long(self, artifact_id: str, *, user_id: str | None = None, session_id: str | None = None) -> str:
        """A 24-hour download URL."""
        return self.presign(artifact_id, 86400, user_id=user_id, session_id=session_id)
