"""Listing and search for ``ArtifactStore``: one indexed, keyset-paginated catalog query each.

Every query here is served by an index of ``schema.py`` (``tests/test_indexes.py`` checks the
plans), so its cost does not grow with the number of artifacts; a cursor continues a listing
exactly where the previous page ended, so every match is returned once.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from . import grid
from .access import Caller
from .core import StoreCore
from .errors import InvalidArgumentError
from .events import reports_denials
from .fulltext import query_words
from .models import ArtifactList, hit_from_row, metadata_from_row

if TYPE_CHECKING:
    from .models import Row

__all__ = ["ListingMethods", "MAX_LIMIT"]

MAX_LIMIT = 1000


def _check_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgumentError(f"limit must be an integer from 1 to {MAX_LIMIT}")
    return limit


def _page(rows: list[Row], next_cursor: str | None) -> ArtifactList:
    return ArtifactList([metadata_from_row(r) for r in rows], next_cursor)


def _session_view(caller: Caller) -> Row | None:
    """The filters of what a caller naming a session may see of it (``access.can_read``): of a
    live session, the artifacts of no owner or of the caller's user; of a session that is not
    live (unknown, deleted, expired), only the caller's own user-scoped ones. ``None``: nothing."""
    if caller.session is not None:
        return {"session_id": caller.session_id, "visible_owner": caller.user_id}
    if caller.user_id is None:
        return None
    return {"session_id": caller.session_id, "visible_owner": caller.user_id, "user_scope_only": True}


class ListingMethods(StoreCore):
    """``list_by_session``, ``get_directory_contents`` and ``search``."""

    @reports_denials
    def list_by_session(
        self,
        session_id: str,
        limit: int = 100,
        *,
        cursor: str | None = None,
        user_id: str | None = None,
    ) -> ArtifactList:
        """Live artifacts of a session, oldest first, one page at a time (see ``next_cursor``)."""
        caller = self.policy.caller(user_id, session_id)
        limit = _check_limit(limit)
        view = _session_view(caller)
        if view is None:
            return _page([], None)
        rows, nxt = self.catalog.find_artifacts(
            sandbox_id=self.sandbox_id, now=time.time(), limit=limit, cursor=cursor, **view
        )
        return _page(rows, nxt)

    @reports_denials
    def get_directory_contents(
        self,
        session_id: str,
        directory_prefix: str = "",
        limit: int = 100,
        *,
        cursor: str | None = None,
        user_id: str | None = None,
    ) -> ArtifactList:
        """Artifacts of a session whose filename starts with ``directory_prefix``, by filename."""
        caller = self.policy.caller(user_id, session_id)
        if not isinstance(directory_prefix, str) or len(directory_prefix) > grid.MAX_FILENAME_LENGTH:
            raise InvalidArgumentError("directory_prefix must be a string")
        grid.validate_text(directory_prefix, "directory_prefix")
        limit = _check_limit(limit)
        view = _session_view(caller)
        if view is None:
            return _page([], None)
        rows, nxt = self.catalog.find_artifacts(
            sandbox_id=self.sandbox_id,
            now=time.time(),
            limit=limit,
            cursor=cursor,
            filename_prefix=directory_prefix or None,
            order_by_filename=True,
            **view,
        )
        return _page(rows, nxt)

    @reports_denials
    def search(
        self,
        *,
        user_id: str | None = None,
        session_id: str | None = None,
        scope: str | None = None,
        mime_prefix: str | None = None,
        meta_filter: dict[str, Any] | None = None,
        filename_prefix: str | None = None,
        limit: int = 100,
        cursor: str | None = None,
        text: str | None = None,
        snippet: bool = False,
    ) -> ArtifactList:
        """Live artifacts the caller may read that match every filter, oldest first, paginated.

        ``user_id`` limits to that user's artifacts (except for ``scope='sandbox'``, which anyone
        may read); ``session_id`` to that session's; ``meta_filter`` matches top-level meta values
        exactly. Pass the previous page's ``next_cursor`` as ``cursor`` for the next page.

        ``text``: full-text search. Every word of it must occur in the filename, the summary, a
        meta value or the text of the content (text/* and JSON, the first ``text_index_bytes``;
        plugins add more with ``extract_text``); case and accents do not matter, and the text
        is read as words, never as query syntax. The results are ``SearchHit`` s, best first;
        ``snippet=True`` adds a snippet with the matched words marked.
        """
        caller = self.policy.caller(user_id, session_id)
        words = query_words(text) if text is not None else None
        if not isinstance(snippet, bool):
            raise InvalidArgumentError("snippet must be True or False")
        if snippet and words is None:
            raise InvalidArgumentError("snippet needs a text search (text=...)")
        if scope is not None:
            grid.validate_scope(scope)
        if meta_filter is not None:  # a dict of JSON values, as stored meta is
            meta_filter = grid.validate_meta(meta_filter, self.settings.max_meta_bytes)
            if len(meta_filter) > grid.MAX_META_FILTER_ENTRIES:
                raise InvalidArgumentError(
                    f"meta_filter has {len(meta_filter)} entries; at most {grid.MAX_META_FILTER_ENTRIES} are allowed "
                    "(filter on fewer keys, or keep a combined value under one key)"
                )
        for name, value in (("mime_prefix", mime_prefix), ("filename_prefix", filename_prefix)):
            if value is not None and (not isinstance(value, str) or len(value) > grid.MAX_FILENAME_LENGTH):
                raise InvalidArgumentError(f"{name} must be a string")
            if value is not None:
                grid.validate_text(value, name)
        filters: dict[str, Any] = {}
        limit = _check_limit(limit)
        if caller.session_id is not None:
            view = _session_view(caller)
            if view is None:
                return _page([], None)
            filters.update(view)
        elif caller.user_id is not None and scope != "sandbox":
            filters["owner_id"] = caller.user_id
        rows, nxt = self.catalog.find_artifacts(
            sandbox_id=self.sandbox_id,
            now=time.time(),
            limit=limit,
            cursor=cursor,
            scope=scope,
            mime_prefix=mime_prefix,
            meta_filter=meta_filter,
            filename_prefix=filename_prefix,
            text=words,
            snippet=snippet,
            **filters,
        )
        if words is not None:
            return ArtifactList([hit_from_row(r) for r in rows], nxt)
        return _page(rows, nxt)
