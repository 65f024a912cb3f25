"""Properties that must hold for all inputs: round-trips, the access matrix, key confinement."""

from __future__ import annotations

import hashlib
import itertools
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from chuk_artifacts import ArtifactStore
from chuk_artifacts.blobs import LocalBlobs
from chuk_artifacts.errors import AccessDeniedError, InvalidArgumentError, ProviderError
from chuk_artifacts.grid import make_key, parse_grid_key

PROPERTY = settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# -- strategies --------------------------------------------------------------------------------

#: Characters a filename segment may hold: anything but separators, controls and surrogates.
_NAME_CHARS = st.characters(
    blacklist_categories=("Cs",),
    blacklist_characters="/\\" + "".join(map(chr, range(0x20))) + "\x7f",
)
_SEGMENT = st.text(_NAME_CHARS, min_size=1, max_size=12).filter(lambda s: s not in (".", ".."))
valid_filenames = st.lists(_SEGMENT, min_size=1, max_size=4).map("/".join)

#: Text every catalog stores (PostgreSQL refuses NUL, so the store refuses it everywhere).
storable_text = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=30)
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    # Any finite float: meta is stored as JSON text on every database, so 4.3e16 stays a float.
    | st.floats(allow_nan=False, allow_infinity=False)
    | storable_text
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(storable_text, inner, max_size=4),
    max_leaves=12,
)
meta_dicts = st.dictionaries(storable_text.filter(bool), json_values, max_size=5)

#: Ids in the allowed alphabet (the character set grid.validate_id accepts).
valid_ids = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.@+=~|:-]{0,15}", fullmatch=True).filter(lambda s: ".." not in s)

_counter = itertools.count()


@pytest.fixture
def memory_store(make_store) -> ArtifactStore:
    """One store per test, shared by all its examples (the ids below keep examples apart)."""
    return make_store("memory")


@pytest.fixture
def filesystem_store(make_store) -> ArtifactStore:
    return make_store("filesystem")


def unique(base: str) -> str:
    """``base`` made unique within the test run (stores outlive a single example)."""
    return f"{base}-{next(_counter)}"


# -- (1) bytes and metadata round-trip -----------------------------------------------------------


@PROPERTY
@given(
    data=st.binary(max_size=4096),
    summary=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=200),
    filename=st.none() | valid_filenames,
    meta=meta_dicts,
    scope=st.sampled_from(["session", "user", "sandbox"]),
)
def test_bytes_and_metadata_round_trip(store, data, summary, filename, meta, scope):
    identity = {} if scope == "sandbox" else {"user_id": "alice"}
    artifact_id = store.store(
        data,
        mime="application/octet-stream",
        summary=summary,
        filename=filename,
        meta=meta,
        scope=scope,
        **identity,
    )

    assert store.retrieve(artifact_id, **identity) == data
    md = store.metadata(artifact_id, **identity)
    assert (md.summary, md.filename, md.meta, md.scope) == (summary, filename, meta, scope)
    assert md.bytes == len(data)
    assert md.sha256 == hashlib.sha256(data).hexdigest()
    assert md.mime == "application/octet-stream"


@PROPERTY
@given(meta=meta_dicts.filter(bool))
def test_every_stored_meta_entry_is_found_by_meta_filter(store, meta):
    artifact_id = store.store(b"x", mime="text/plain", meta=meta, scope="sandbox")
    for name, value in meta.items():
        found = [m.artifact_id for m in store.search(meta_filter={name: value}, limit=1000)]
        assert artifact_id in found, (name, value)


#: Any text at all, lone surrogates and control characters included.
any_text = st.lists(st.characters() | st.characters(categories=["Cs", "Cc"]), max_size=40).map("".join)


@PROPERTY
@given(field=st.sampled_from(["summary", "filename", "meta_value", "meta_key"]), text=any_text)
def test_any_text_is_stored_faithfully_or_refused_as_invalid(store, field, text):
    kwargs = {
        "summary": {"summary": text},
        "filename": {"filename": text},
        "meta_value": {"meta": {"k": text}},
        "meta_key": {"meta": {text: 1}},
    }[field]
    try:
        artifact_id = store.store(b"x", mime="text/plain", scope="sandbox", **kwargs)
    except InvalidArgumentError:
        return
    md = store.metadata(artifact_id)
    stored = {"summary": md.summary, "filename": md.filename, "meta_value": md.meta, "meta_key": md.meta}
    expected = {"meta_value": {"k": text}, "meta_key": {text: 1}}.get(field, text)
    assert stored[field] == expected


#: Characters at the edges of code-point order, where a prefix range's upper bound is tricky.
_EDGE_CHARS = st.sampled_from(["a", "b", "z", "~", "é", "\ud7ff", "\ue000", "\uffff", "\U0010ffff", "/"])
edge_names = (
    st.lists(_EDGE_CHARS, min_size=1, max_size=4)
    .map("".join)
    .filter(lambda n: all(part not in ("", ".", "..") for part in n.split("/")))
)


@PROPERTY
@given(
    names=st.lists(edge_names, min_size=1, max_size=6),
    prefix=st.lists(_EDGE_CHARS, min_size=1, max_size=3).map("".join),
)
def test_filename_prefix_search_returns_exactly_the_names_with_that_prefix(memory_store, names, prefix):
    sid = memory_store.create_session(session_id=unique("pfx"))
    ids = {memory_store.store(b"x", mime="text/plain", filename=n, session_id=sid): n for n in names}

    listed = memory_store.get_directory_contents(sid, prefix, limit=1000)
    searched = memory_store.search(session_id=sid, filename_prefix=prefix, limit=1000)

    expected = {aid for aid, name in ids.items() if name.startswith(prefix)}
    assert {m.artifact_id for m in listed} == expected
    assert {m.artifact_id for m in searched} == expected


@PROPERTY
@given(prefix=any_text)
def test_any_prefix_text_is_searched_or_refused_as_invalid(memory_store, prefix):
    for call in (
        lambda: memory_store.search(filename_prefix=prefix),
        lambda: memory_store.search(mime_prefix=prefix),
        lambda: memory_store.get_directory_contents("some-session", prefix),
    ):
        try:
            assert call() == []
        except InvalidArgumentError:
            pass


# -- (2) the access matrix -----------------------------------------------------------------------

#: DESIGN.md's table restated per caller relation: (may read, may write/delete).
#: Relations: who the caller is relative to the artifact's owning user and owning session.
ACCESS_TABLE: dict[str, dict[str, tuple[bool, bool]]] = {
    "session": {
        "admin": (True, True),
        "owning_session": (True, True),
        "owning_user_no_session": (True, True),  # acts for the user's own sessions
        "owning_user_other_session": (False, False),
        "other_user": (False, False),
        "other_users_session": (False, False),
        "anonymous_other_session": (False, False),
        "unknown_session": (False, False),
        "forged_user_on_owning_session": (False, False),
    },
    "user": {
        "admin": (True, True),
        "owning_session": (True, True),
        "owning_user_no_session": (True, True),
        "owning_user_other_session": (True, True),  # from any session
        "other_user": (False, False),
        "other_users_session": (False, False),
        "anonymous_other_session": (False, False),
        "unknown_session": (False, False),
        "forged_user_on_owning_session": (False, False),
    },
    "sandbox": {
        "admin": (True, True),
        "owning_session": (True, False),
        "owning_user_no_session": (True, False),
        "owning_user_other_session": (True, False),
        "other_user": (True, False),
        "other_users_session": (True, False),
        "anonymous_other_session": (True, False),
        "unknown_session": (True, False),
        "forged_user_on_owning_session": (False, False),  # a lie about identity is refused outright
    },
}
RELATIONS = sorted(ACCESS_TABLE["session"])


def _setup_artifact(store: ArtifactStore, scope: str, anonymous_owner: bool, id_style: str):
    """Create owner, sessions and one artifact; return (artifact_id, callers by relation)."""
    owner = unique(f"own{id_style}")
    other = unique(f"oth{id_style}")
    owning = store.create_session(user_id=None if anonymous_owner else owner, session_id=unique(f"s{id_style}"))
    owners_other = store.create_session(user_id=owner, session_id=unique("so"))
    others = store.create_session(user_id=other, session_id=unique("sx"))
    anonymous = store.create_session(session_id=unique("sa"))
    if scope == "sandbox":
        artifact_id = store.store(b"data", mime="text/plain", scope="sandbox")
    elif scope == "user":
        artifact_id = store.store(b"data", mime="text/plain", scope="user", user_id=owner, session_id=owners_other)
    else:
        artifact_id = store.store(b"data", mime="text/plain", scope="session", session_id=owning)
    callers = {
        "admin": {},
        "owning_session": {"session_id": owning},
        "owning_user_no_session": {"user_id": owner},
        "owning_user_other_session": {"session_id": owners_other},
        "other_user": {"user_id": other},
        "other_users_session": {"session_id": others},
        "anonymous_other_session": {"session_id": anonymous},
        "unknown_session": {"session_id": unique("never-created")},
        "forged_user_on_owning_session": {"session_id": owners_other, "user_id": other},
    }
    return artifact_id, callers


def _attempt(store: ArtifactStore, operation: str, artifact_id: str, caller: dict) -> bool:
    """Run ``operation`` as ``caller``: True if it succeeded, False if access was denied."""
    try:
        if operation == "retrieve":
            assert store.retrieve(artifact_id, **caller) == b"data"
        elif operation == "metadata":
            assert store.metadata(artifact_id, **caller).artifact_id == artifact_id
        elif operation == "update_metadata":
            assert store.update_metadata(artifact_id, summary="changed", **caller).summary == "changed"
        elif operation == "delete":
            assert store.delete(artifact_id, **caller) is True
        else:  # pragma: no cover
            raise AssertionError(operation)
    except AccessDeniedError:
        return False
    return True


@settings(PROPERTY, max_examples=400)  # 3 scopes x 9 relations x 4 operations: cover them all
@given(
    scope=st.sampled_from(["session", "user", "sandbox"]),
    anonymous_owner=st.booleans(),
    relation=st.sampled_from(RELATIONS),
    operation=st.sampled_from(["retrieve", "metadata", "update_metadata", "delete"]),
    id_style=st.sampled_from(["", ".x", "@y", "+z", "=w", "~v", "|u", ":t", "_s"]),
)
def test_access_matrix(memory_store, scope, anonymous_owner, relation, operation, id_style):
    if scope != "session":
        anonymous_owner = False  # only session-scoped artifacts can belong to an anonymous session
    # The owning user of an anonymous session does not exist: those relations do not apply.
    assume(not (anonymous_owner and relation in ("owning_user_no_session", "owning_user_other_session")))
    store = memory_store
    artifact_id, callers = _setup_artifact(store, scope, anonymous_owner, id_style)

    may_read, may_write = ACCESS_TABLE[scope][relation]
    expected = may_read if operation in ("retrieve", "metadata") else may_write

    assert _attempt(store, operation, artifact_id, callers[relation]) is expected
    if operation == "delete":
        assert store.exists(artifact_id) is (not expected)
    if operation == "update_metadata" and not expected:
        assert store.metadata(artifact_id).summary == ""


# -- (3) no id or filename yields a key outside its prefix --------------------------------------

arbitrary_ids = (
    st.text(max_size=20)
    | valid_ids
    | st.sampled_from(["..", ".", "a/b", "../x", "x/..", "/abs", "a..b", "", " ", "a b", "sess\n1", "ä", "a\\b"])
)


@PROPERTY
@given(
    sandbox=arbitrary_ids,
    scope=st.sampled_from(["session", "user", "sandbox"]),
    artifact=arbitrary_ids,
    session=arbitrary_ids,
    user=arbitrary_ids,
)
def test_make_key_never_leaves_its_prefix(sandbox, scope, artifact, session, user):
    try:
        key = make_key(sandbox, scope, artifact, session_id=session, user_id=user)
    except InvalidArgumentError:
        return
    assert key.startswith(f"grid/{sandbox}/")
    assert ".." not in key.split("/")
    parsed = parse_grid_key(key)
    assert (parsed.sandbox_id, parsed.scope, parsed.artifact_id) == (sandbox, scope, artifact)
    assert parsed.session_id == (session if scope == "session" else None)
    assert parsed.user_id == (user if scope == "user" else None)
    assert parsed.key == key


@PROPERTY
@given(key=st.text(max_size=40))
def test_parse_grid_key_accepts_only_what_make_key_builds(key):
    try:
        parsed = parse_grid_key(key)
    except InvalidArgumentError:
        return
    assert make_key(parsed.sandbox_id, parsed.scope, parsed.artifact_id, parsed.session_id, parsed.user_id) == key


hostile_filenames = st.text(max_size=40) | st.lists(
    st.sampled_from(["..", ".", "", "etc", "passwd", "/", "\\", "~", "grid", "a"]), max_size=6
).map("/".join)


def _all_files(root: Path) -> list[Path]:
    out = []
    for dirpath, _dirs, files in os.walk(root):
        out += [Path(dirpath) / f for f in files]
    return out


@PROPERTY
@given(filename=hostile_filenames, new_filename=hostile_filenames)
def test_filenames_never_place_bytes_outside_the_grid(filesystem_store, tmp_path, filename, new_filename):
    store = filesystem_store
    root = Path(store.blobs.root_dir)
    try:
        artifact_id = store.store(b"x", mime="text/plain", filename=filename, scope="sandbox")
        store.move_file(artifact_id, new_filename=new_filename)
        store.copy_file(artifact_id, new_filename=new_filename)
    except InvalidArgumentError:
        pass

    grid_dir = root / "grid"
    for path in _all_files(root):
        inside_grid = grid_dir in path.parents
        catalog_file = path.parent == root and path.name.startswith("catalog.db")
        assert inside_grid or catalog_file, path
    assert [p.name for p in tmp_path.iterdir()] == [root.name]


traversal_keys = st.text(max_size=40) | st.lists(
    st.sampled_from(["..", ".", "", "a", "grid", "b/..", "/", "\\", "..."]), max_size=8
).map("/".join)


@pytest.fixture(scope="module")
def local_blobs(tmp_path_factory: pytest.TempPathFactory) -> LocalBlobs:
    return LocalBlobs(tmp_path_factory.mktemp("local-blobs"))


@settings(max_examples=300, deadline=None)
@given(key=traversal_keys)
def test_local_path_stays_inside_its_root_or_raises(local_blobs, key):
    try:
        path = local_blobs.path(key)
    except ProviderError:
        return
    assert path.startswith(local_blobs.root_dir + os.sep)
    assert os.path.normpath(path) == path
    assert ".." not in Path(path).relative_to(local_blobs.root_dir).parts
