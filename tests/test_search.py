"""Search, session listings and directory listings: filters, ordering, pagination, visibility."""

from __future__ import annotations

import pytest

from chuk_artifacts import ArtifactList, InvalidArgumentError
from chuk_artifacts.catalog import encode_cursor


@pytest.fixture
def mem(make_store):
    """Argument validation does not depend on the backend: one memory store is enough."""
    return make_store("memory")


def ids(results) -> list[str]:
    return [m.artifact_id for m in results]


def all_pages(fetch, limit: int) -> tuple[list[str], int]:
    """Follow ``next_cursor`` from the first page to the last; return every id and the page count."""
    seen: list[str] = []
    cursor = None
    pages = 0
    while True:
        page = fetch(limit=limit, cursor=cursor)
        pages += 1
        assert isinstance(page, ArtifactList)
        assert len(page) <= limit
        seen += ids(page)
        if page.next_cursor is None:
            return seen, pages
        assert len(page) == limit
        cursor = page.next_cursor
        assert pages < 1000, "pagination does not terminate"


# -- filters --------------------------------------------------------------------------------


def test_search_returns_a_list_with_next_cursor(store):
    store.store(b"x", mime="text/plain", user_id="alice")
    result = store.search(user_id="alice")
    assert isinstance(result, list)
    assert result.next_cursor is None


def test_search_by_user_and_scope_returns_only_that_users_artifacts_of_that_scope(store):
    mine = store.store(b"1", mime="text/plain", user_id="alice", scope="user")
    store.store(b"2", mime="text/plain", user_id="alice")  # session scope
    store.store(b"3", mime="text/plain", user_id="bob", scope="user")
    store.store(b"4", mime="text/plain", scope="sandbox")
    assert ids(store.search(user_id="alice", scope="user")) == [mine]


def test_search_by_user_returns_that_users_artifacts_across_sessions(store):
    s1 = store.create_session(user_id="alice")
    s2 = store.create_session(user_id="alice")
    a = store.store(b"1", mime="text/plain", session_id=s1)
    b = store.store(b"2", mime="text/plain", session_id=s2)
    c = store.store(b"3", mime="text/plain", user_id="alice", scope="user")
    store.store(b"4", mime="text/plain", user_id="bob")
    assert sorted(ids(store.search(user_id="alice"))) == sorted([a, b, c])


def test_search_sandbox_scope_is_visible_to_any_user(store):
    shared = store.store(b"x", mime="text/plain", scope="sandbox")
    store.store(b"y", mime="text/plain", user_id="alice", scope="user")
    assert ids(store.search(user_id="bob", scope="sandbox")) == [shared]
    assert ids(store.search(scope="sandbox")) == [shared]


def test_search_by_mime_prefix(store):
    png = store.store(b"1", mime="image/png", user_id="alice")
    jpg = store.store(b"2", mime="image/jpeg", user_id="alice")
    store.store(b"3", mime="text/plain", user_id="alice")
    store.store(b"4", mime="imagex/foo", user_id="alice")
    assert sorted(ids(store.search(user_id="alice", mime_prefix="image/"))) == sorted([png, jpg])
    assert ids(store.search(user_id="alice", mime_prefix="image/png")) == [png]


def test_search_by_meta_filter_matches_top_level_equality(store):
    q4 = store.store(b"1", mime="text/plain", user_id="alice", meta={"quarter": "Q4", "year": 2024})
    store.store(b"2", mime="text/plain", user_id="alice", meta={"quarter": "Q3", "year": 2024})
    store.store(b"3", mime="text/plain", user_id="alice", meta={"year": 2024})
    assert ids(store.search(user_id="alice", meta_filter={"quarter": "Q4"})) == [q4]


def test_search_meta_filter_requires_every_key_to_match(store):
    both = store.store(b"1", mime="text/plain", user_id="alice", meta={"a": 1, "b": 2})
    store.store(b"2", mime="text/plain", user_id="alice", meta={"a": 1, "b": 3})
    store.store(b"3", mime="text/plain", user_id="alice", meta={"a": 2, "b": 2})
    assert ids(store.search(user_id="alice", meta_filter={"a": 1, "b": 2})) == [both]


def test_search_meta_filter_matches_numbers_and_not_their_string_form(store):
    num = store.store(b"1", mime="text/plain", user_id="alice", meta={"n": 42})
    txt = store.store(b"2", mime="text/plain", user_id="alice", meta={"n": "42"})
    flt = store.store(b"3", mime="text/plain", user_id="alice", meta={"n": 2.5})
    assert ids(store.search(user_id="alice", meta_filter={"n": 42})) == [num]
    assert ids(store.search(user_id="alice", meta_filter={"n": "42"})) == [txt]
    assert ids(store.search(user_id="alice", meta_filter={"n": 2.5})) == [flt]
    assert ids(store.search(user_id="alice", meta_filter={"n": 43})) == []


def test_search_meta_filter_distinguishes_booleans_null_and_numbers(store):
    t = store.store(b"1", mime="text/plain", user_id="alice", meta={"v": True})
    one = store.store(b"2", mime="text/plain", user_id="alice", meta={"v": 1})
    null = store.store(b"3", mime="text/plain", user_id="alice", meta={"v": None})
    assert ids(store.search(user_id="alice", meta_filter={"v": True})) == [t]
    assert ids(store.search(user_id="alice", meta_filter={"v": 1})) == [one]
    assert ids(store.search(user_id="alice", meta_filter={"v": None})) == [null]


def test_search_meta_filter_matches_nested_dicts_whatever_their_key_order(store):
    aid = store.store(b"1", mime="text/plain", user_id="alice", meta={"cfg": {"a": 1, "b": {"c": [1, 2]}}})
    store.store(b"2", mime="text/plain", user_id="alice", meta={"cfg": {"a": 1}})
    assert ids(store.search(user_id="alice", meta_filter={"cfg": {"b": {"c": [1, 2]}, "a": 1}})) == [aid]
    assert ids(store.search(user_id="alice", meta_filter={"cfg": {"a": 1, "b": {"c": [2, 1]}}})) == []


def test_search_meta_filter_matches_lists_exactly(store):
    aid = store.store(b"1", mime="text/plain", user_id="alice", meta={"tags": ["a", "b"]})
    assert ids(store.search(user_id="alice", meta_filter={"tags": ["a", "b"]})) == [aid]
    assert ids(store.search(user_id="alice", meta_filter={"tags": ["b", "a"]})) == []
    assert ids(store.search(user_id="alice", meta_filter={"tags": "a"})) == []


def test_search_meta_filter_matches_long_values(store):
    long_value = "x" * 5000
    aid = store.store(b"1", mime="text/plain", user_id="alice", meta={"blob": long_value})
    store.store(b"2", mime="text/plain", user_id="alice", meta={"blob": long_value + "y"})
    assert ids(store.search(user_id="alice", meta_filter={"blob": long_value})) == [aid]


def test_search_meta_filter_does_not_match_nested_keys_at_top_level(store):
    store.store(b"1", mime="text/plain", user_id="alice", meta={"outer": {"inner": 1}})
    assert ids(store.search(user_id="alice", meta_filter={"inner": 1})) == []


def test_search_meta_filter_follows_metadata_updates(store):
    aid = store.store(b"1", mime="text/plain", user_id="alice", meta={"status": "draft"})
    store.update_metadata(aid, meta={"status": "final"})
    assert ids(store.search(user_id="alice", meta_filter={"status": "draft"})) == []
    assert ids(store.search(user_id="alice", meta_filter={"status": "final"})) == [aid]
    store.update_metadata(aid, meta={"other": 1}, merge=False)
    assert ids(store.search(user_id="alice", meta_filter={"status": "final"})) == []


def test_search_by_filename_prefix(store):
    a = store.store(b"1", mime="text/plain", user_id="alice", filename="docs/a.txt")
    b = store.store(b"2", mime="text/plain", user_id="alice", filename="docs/b.txt")
    store.store(b"3", mime="text/plain", user_id="alice", filename="images/c.png")
    store.store(b"4", mime="text/plain", user_id="alice")
    assert sorted(ids(store.search(user_id="alice", filename_prefix="docs/"))) == sorted([a, b])


def test_search_by_session_id_returns_only_that_session(store):
    s1 = store.create_session(user_id="alice")
    s2 = store.create_session(user_id="alice")
    a = store.store(b"1", mime="text/plain", session_id=s1)
    store.store(b"2", mime="text/plain", session_id=s2)
    assert ids(store.search(session_id=s1)) == [a]


def test_search_combines_every_filter(store):
    hit = store.store(b"1", mime="image/png", user_id="alice", scope="user", filename="pics/a.png", meta={"k": 1})
    store.store(b"2", mime="image/png", user_id="alice", scope="user", filename="pics/b.png", meta={"k": 2})
    store.store(b"3", mime="text/plain", user_id="alice", scope="user", filename="pics/c.png", meta={"k": 1})
    store.store(b"4", mime="image/png", user_id="alice", scope="user", filename="docs/d.png", meta={"k": 1})
    store.store(b"5", mime="image/png", user_id="alice", filename="pics/e.png", meta={"k": 1})
    found = store.search(
        user_id="alice", scope="user", mime_prefix="image/", meta_filter={"k": 1}, filename_prefix="pics/"
    )
    assert ids(found) == [hit]


def test_search_results_are_oldest_first(store):
    made = [store.store(b"x", mime="text/plain", user_id="alice") for _ in range(5)]
    assert ids(store.search(user_id="alice")) == made


def test_search_by_admin_without_filters_returns_everything_live(store):
    a = store.store(b"1", mime="text/plain", user_id="alice")
    b = store.store(b"2", mime="text/plain", user_id="bob", scope="user")
    c = store.store(b"3", mime="text/plain", scope="sandbox")
    assert sorted(ids(store.search())) == sorted([a, b, c])


@pytest.mark.parametrize(
    "bad",
    [
        {"meta_filter": "k=v"},
        {"meta_filter": ["k"]},
        {"meta_filter": {"k": object()}},
        {"scope": "everything"},
        {"mime_prefix": 5},
        {"filename_prefix": b"x"},
    ],
)
def test_search_refuses_bad_filters(mem, bad):
    with pytest.raises(InvalidArgumentError):
        mem.search(**bad)


# -- list_by_session / get_directory_contents -------------------------------------------------------


def test_list_by_session_returns_the_sessions_artifacts_oldest_first(store):
    sid = store.create_session(user_id="alice")
    other = store.create_session(user_id="alice")
    made = [store.store(b"x", mime="text/plain", session_id=sid) for _ in range(3)]
    store.store(b"y", mime="text/plain", session_id=other)
    assert ids(store.list_by_session(sid)) == made


def test_list_by_session_of_an_unknown_session_is_empty(store):
    assert store.list_by_session("no-such-session") == []


def test_list_by_session_includes_the_session_owners_user_scoped_artifacts(store):
    sid = store.create_session(user_id="alice")
    a = store.store(b"1", mime="text/plain", session_id=sid)
    b = store.store(b"2", mime="text/plain", session_id=sid, scope="user")
    assert ids(store.list_by_session(sid)) == [a, b]


def test_get_directory_contents_filters_by_prefix_and_orders_by_filename(store):
    sid = store.create_session(user_id="alice")
    c = store.store(b"1", mime="text/plain", session_id=sid, filename="docs/c.txt")
    a = store.store(b"2", mime="text/plain", session_id=sid, filename="docs/a.txt")
    b = store.store(b"3", mime="text/plain", session_id=sid, filename="docs/b.txt")
    store.store(b"4", mime="text/plain", session_id=sid, filename="images/a.png")
    store.store(b"5", mime="text/plain", session_id=sid, filename="docsx.txt")
    store.store(b"6", mime="text/plain", session_id=sid)
    assert ids(store.get_directory_contents(sid, "docs/")) == [a, b, c]


def test_get_directory_contents_without_prefix_lists_every_named_artifact_by_name(store):
    sid = store.create_session(user_id="alice")
    z = store.store(b"1", mime="text/plain", session_id=sid, filename="z.txt")
    a = store.store(b"2", mime="text/plain", session_id=sid, filename="a.txt")
    assert ids(store.get_directory_contents(sid)) == [a, z]


def test_get_directory_contents_stays_within_the_session(store):
    sid = store.create_session(user_id="alice")
    other = store.create_session(user_id="alice")
    mine = store.store(b"1", mime="text/plain", session_id=sid, filename="docs/a.txt")
    store.store(b"2", mime="text/plain", session_id=other, filename="docs/b.txt")
    assert ids(store.get_directory_contents(sid, "docs/")) == [mine]


# -- pagination -------------------------------------------------------------------------------------


@pytest.mark.parametrize("limit", [1, 7, 23])
def test_search_pages_return_every_match_exactly_once(store, limit):
    made = [store.store(b"x", mime="text/plain", user_id="alice", meta={"i": i % 2}) for i in range(23)]
    store.store(b"y", mime="text/plain", user_id="bob")
    seen, pages = all_pages(lambda **kw: store.search(user_id="alice", **kw), limit)
    assert seen == made
    assert pages == max(1, -(-23 // limit))


def test_search_pages_with_a_filter_return_every_match_exactly_once(store):
    made = [store.store(b"x", mime="text/plain", user_id="alice", meta={"i": i % 3}) for i in range(20)]
    wanted = [aid for i, aid in enumerate(made) if i % 3 == 0]
    seen, _ = all_pages(lambda **kw: store.search(user_id="alice", meta_filter={"i": 0}, **kw), 2)
    assert seen == wanted


def test_search_with_an_exact_multiple_of_the_limit_ends_with_next_cursor_none(store):
    for _ in range(6):
        store.store(b"x", mime="text/plain", user_id="alice")
    first = store.search(user_id="alice", limit=3)
    second = store.search(user_id="alice", limit=3, cursor=first.next_cursor)
    assert first.next_cursor is not None
    assert len(second) == 3
    assert second.next_cursor is None


@pytest.mark.parametrize("limit", [1, 4, 10])
def test_list_by_session_pages_return_every_artifact_exactly_once(store, limit):
    sid = store.create_session(user_id="alice")
    made = [store.store(b"x", mime="text/plain", session_id=sid) for _ in range(10)]
    seen, _ = all_pages(lambda **kw: store.list_by_session(sid, **kw), limit)
    assert seen == made


@pytest.mark.parametrize("limit", [1, 4, 10])
def test_get_directory_contents_pages_return_every_file_exactly_once_by_name(store, limit):
    sid = store.create_session(user_id="alice")
    names = [f"dir/{n:02d}.txt" for n in (7, 3, 9, 1, 0, 5, 2, 8, 6, 4)]
    by_name = {store.store(b"x", mime="text/plain", session_id=sid, filename=n): n for n in names}
    # Duplicate names must not be skipped or repeated across page boundaries.
    dupes = [store.store(b"x", mime="text/plain", session_id=sid, filename="dir/05.txt") for _ in range(3)]
    by_name.update({d: "dir/05.txt" for d in dupes})
    seen, _ = all_pages(lambda **kw: store.get_directory_contents(sid, "dir/", **kw), limit)
    assert sorted(seen) == sorted(by_name)
    assert len(seen) == len(set(seen))
    assert [by_name[i] for i in seen] == sorted(by_name.values())


def test_pagination_is_stable_when_artifacts_are_added_between_pages(store):
    made = [store.store(b"x", mime="text/plain", user_id="alice") for _ in range(4)]
    first = store.search(user_id="alice", limit=2)
    later = store.store(b"x", mime="text/plain", user_id="alice")
    second = store.search(user_id="alice", limit=10, cursor=first.next_cursor)
    assert ids(first) + ids(second) == made + [later]


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "bm90IGpzb24",
        encode_cursor([1, 2, 3]),
        encode_cursor(["abc"]),
        encode_cursor([None]),
        encode_cursor([1.5]),
        12345,
    ],
)
def test_search_refuses_an_invalid_cursor(mem, cursor):
    mem.store(b"x", mime="text/plain", user_id="alice")
    with pytest.raises(InvalidArgumentError):
        mem.search(cursor=cursor)


def test_a_forged_cursor_is_refused_on_every_catalog(store):
    """A cursor of the wrong types must not reach the SQL (PostgreSQL would fail on it)."""
    sid = store.create_session(user_id="alice")
    store.store(b"x", mime="text/plain", session_id=sid, filename="a.txt")
    for call in (
        lambda: store.search(cursor=encode_cursor(["abc"])),
        lambda: store.list_by_session(sid, cursor=encode_cursor(["abc"])),
        lambda: store.get_directory_contents(sid, cursor=encode_cursor([5, "x"])),
    ):
        with pytest.raises(InvalidArgumentError):
            call()


@pytest.mark.parametrize(
    "cursor", ["garbage!!", encode_cursor([1]), encode_cursor([5, "x"]), encode_cursor(["a", "b"])]
)
def test_get_directory_contents_refuses_an_invalid_cursor(mem, cursor):
    sid = mem.create_session(user_id="alice")
    mem.store(b"x", mime="text/plain", session_id=sid, filename="a.txt")
    with pytest.raises(InvalidArgumentError):
        mem.get_directory_contents(sid, cursor=cursor)


def test_list_by_session_refuses_an_invalid_cursor(mem):
    sid = mem.create_session(user_id="alice")
    with pytest.raises(InvalidArgumentError):
        mem.list_by_session(sid, cursor="%%%")


@pytest.mark.parametrize("limit", [0, -1, 1001, "10", 2.5, True, None])
def test_search_refuses_a_bad_limit(mem, limit):
    with pytest.raises(InvalidArgumentError):
        mem.search(limit=limit)


@pytest.mark.parametrize("limit", [0, 1001, "10"])
def test_listings_refuse_a_bad_limit(mem, limit):
    sid = mem.create_session(user_id="alice")
    with pytest.raises(InvalidArgumentError):
        mem.list_by_session(sid, limit=limit)
    with pytest.raises(InvalidArgumentError):
        mem.get_directory_contents(sid, limit=limit)


def test_search_accepts_the_largest_limit(store):
    store.store(b"x", mime="text/plain", user_id="alice")
    assert len(store.search(limit=1000)) == 1


# -- expired and foreign artifacts never appear ----------------------------------------------------


def test_expired_artifacts_never_appear_in_search_or_listings(store, clock):
    sid = store.create_session(user_id="alice")
    live = store.store(b"1", mime="text/plain", session_id=sid, filename="a.txt", ttl=1000, meta={"k": 1})
    store.store(b"2", mime="text/plain", session_id=sid, filename="b.txt", ttl=10, meta={"k": 1})
    clock.advance(11)
    assert ids(store.search(user_id="alice")) == [live]
    assert ids(store.search(meta_filter={"k": 1})) == [live]
    assert ids(store.list_by_session(sid)) == [live]
    assert ids(store.get_directory_contents(sid)) == [live]


def test_expired_artifacts_do_not_leave_holes_in_pagination(store, clock):
    made = [store.store(b"x", mime="text/plain", user_id="alice", ttl=10 if i % 2 else 1000) for i in range(10)]
    clock.advance(11)
    seen, _ = all_pages(lambda **kw: store.search(user_id="alice", **kw), 2)
    assert seen == made[::2]


def test_other_sandboxes_artifacts_never_appear(make_store):
    a = make_store("filesystem", sandbox_id="a")
    b = make_store("filesystem", sandbox_id="b")
    assert a.catalog.safe_url == b.catalog.safe_url  # one shared catalog
    sid = a.create_session(user_id="alice")
    in_a = a.store(b"1", mime="text/plain", session_id=sid, filename="f.txt", meta={"k": 1}, scope="user")
    shared_a = a.store(b"2", mime="text/plain", scope="sandbox")
    in_b = b.store(b"3", mime="text/plain", user_id="alice", meta={"k": 1}, scope="user")
    assert ids(b.search()) == [in_b]
    assert ids(b.search(user_id="alice")) == [in_b]
    assert ids(b.search(scope="sandbox")) == []
    assert ids(b.search(meta_filter={"k": 1})) == [in_b]
    assert b.list_by_session(sid) == []
    assert b.get_directory_contents(sid) == []
    assert sorted(ids(a.search())) == sorted([in_a, shared_a])


def test_another_sandbox_cannot_read_an_artifact_by_id(make_store):
    from chuk_artifacts import ArtifactNotFoundError

    a = make_store("filesystem", sandbox_id="a")
    b = make_store("filesystem", sandbox_id="b")
    aid = a.store(b"secret", mime="text/plain", scope="sandbox")
    assert b.exists(aid) is False
    with pytest.raises(ArtifactNotFoundError):
        b.retrieve(aid)
    assert b.delete(aid) is False
    assert a.retrieve(aid) == b"secret"
