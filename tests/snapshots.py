"""``snapshot(store)``: everything a store holds, to compare before and after a refused call."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select

from chuk_artifacts import ArtifactStore, schema


def snapshot(store: ArtifactStore) -> tuple[Any, Any]:
    """Every row of every catalog table, and the sha256 of every stored object."""
    rows = {}
    with store.catalog.read() as conn:
        for table in schema.Base.metadata.sorted_tables:
            found = conn.execute(select(table)).mappings().all()
            rows[table.name] = sorted(repr(sorted(r.items())) for r in found)
        if store.catalog.text_index:  # the full-text index (not in the SQLAlchemy metadata)
            found = conn.exec_driver_sql(f"SELECT * FROM {schema.TEXT_TABLE}").all()
            rows[schema.TEXT_TABLE] = sorted(repr(tuple(r)) for r in found)
    blobs = {
        key: hashlib.sha256(store.blobs.get(key)).hexdigest()
        for prefix in ("grid/", "_uploads/")
        for key in store.blobs.keys(prefix)
    }
    return rows, blobs
