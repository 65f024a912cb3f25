"""A five-step tour of chuk-artifacts on the embedded default: no servers, no configuration.

Run it from any directory:

    python examples/quickstart.py            # keeps its files in ./artifacts
    python examples/quickstart.py /tmp/demo  # or in a directory of your choice

The store is the ``filesystem`` provider: bytes under the directory, the SQLite catalog in
``catalog.db`` beside them. Run it twice and the second run finds the first run's report.
"""

from __future__ import annotations

import sys
from pathlib import Path

from chuk_artifacts import AccessDeniedError, ArtifactStore


def main(root: str = "./artifacts") -> None:
    root_path = Path(root).resolve()
    print(f"chuk-artifacts quick start (files and catalog in {root_path})\n")

    with ArtifactStore(storage_provider="filesystem", fs_root=str(root_path)) as store:
        # An identity-bound view: every call below acts as alice, so none can forget to say so.
        alice = store.as_user("alice")

        # 1. Store: a persistent report (user scope) and a scratch note (session scope, 15 min).
        report_id = alice.store(
            b"Q3 revenue: 1.2M\nQ3 costs: 0.9M\n",
            mime="text/plain",
            summary="Quarterly report",
            filename="reports/q3.txt",
            scope="user",
            meta={"kind": "report", "quarter": "Q3"},
        )
        note_id = alice.write_file("remember to check the costs", filename="notes/todo.txt", summary="Scratch note")
        report = alice.metadata(report_id)
        note = alice.metadata(note_id)
        print("1. stored two artifacts for alice")
        print(f"   {report.filename:<16} scope={report.scope:<8} expires={report.expires_at or 'never'}")
        print(f"   {note.filename:<16} scope={note.scope:<8} expires={note.expires_at}")
        print(f"   grid key of the report: {report.key}")

        # 2. Read it back, as text.
        text = alice.read_file(report_id, as_text=True)
        print(f"\n2. read back {report.bytes} bytes: {text.splitlines()[0]!r} ...")

        # 3. Search: served by the catalog's indexes, never by listing the storage.
        reports = alice.search(meta_filter={"kind": "report"})
        texts = alice.search(mime_prefix="text/")
        print(f"\n3. search: {len(reports)} report(s) for alice, {len(texts)} text artifact(s)")
        if len(reports) > 1:
            print("   (earlier runs' reports are still here: user-scoped artifacts persist)")

        # 4. Scopes: bob may not read alice's artifacts, nor borrow her session.
        bob = store.as_user("bob")
        print("\n4. access control")
        try:
            bob.read_file(report_id)
        except AccessDeniedError as exc:
            print(f"   bob reads alice's report      -> AccessDeniedError: {exc}")
        try:
            store.read_file(note_id, user_id="bob", session_id=note.session_id)
        except AccessDeniedError as exc:
            print(f"   bob names alice's session     -> AccessDeniedError: {exc}")
        print(f"   alice reads it from anywhere  -> {len(alice.read_file(report_id))} bytes")

        # 5. What the store now holds.
        stats = store.get_stats()["artifacts"]
        print(f"\n5. the store holds {stats['count']} live artifact(s), {stats['bytes']} bytes")
        print(f"   catalog: {store.get_stats()['catalog']}")

    print("\ndone: run it again and the report count goes up; delete the directory to start over.")


if __name__ == "__main__":
    main(*sys.argv[1:2])
