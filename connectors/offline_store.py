"""The offline store: append-only LanceDB tables; every append is a new, readable version.

>>> import tempfile, pyarrow as pa
>>> store = LanceOfflineStore(tempfile.mkdtemp())
>>> schema = pa.schema([pa.field("x", pa.int64())])
>>> store.append("t", schema, [{"x": 1}, {"x": 2}])
>>> store.count("t"), store.count("missing")
(2, 0)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lancedb
import pyarrow as pa


class LanceOfflineStore:
    """A LanceDB directory (local path or object-store URI) holding the offline tables."""

    def __init__(self, uri: str | Path) -> None:
        self.uri = str(uri)
        self._db = lancedb.connect(self.uri)
        self._tables: dict[str, Any] = {}

    def _table(self, name: str, schema: pa.Schema) -> Any:
        table = self._tables.get(name)
        if table is None:
            table = self._db.create_table(name, schema=schema, exist_ok=True)
            self._tables[name] = table
        return table

    def append(self, name: str, schema: pa.Schema, rows: list[dict[str, Any]]) -> None:
        """Append rows (dicts matching `schema`) as one new table version."""
        if rows:
            self._table(name, schema).add(pa.Table.from_pylist(rows, schema=schema))

    def count(self, name: str) -> int:
        """Rows in table `name`; 0 when it does not exist yet."""
        try:
            return self._db.open_table(name).count_rows()
        except (FileNotFoundError, ValueError):
            return 0
