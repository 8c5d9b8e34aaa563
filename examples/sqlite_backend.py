"""A resultkit backend that is not a filesystem: one SQLite table (standard library only)."""

from __future__ import annotations

import json
import os
import sqlite3
import threading

from resultkit.results import Storage, StorageResult


class SQLiteStorage(Storage):
    """Pairs of (bytes, metadata) in one table of a SQLite database file."""

    def __init__(self, path):
        self.path = os.path.abspath(os.path.expanduser(os.fspath(path)))
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        self.root_url = f"sqlite://{self.path}"
        self._local = threading.local()  # one connection per thread

    def __reduce__(self):  # pickled (shipped to a worker) without its connections
        return type(self), (self.path,)

    def _db(self):
        db = getattr(self._local, "db", None)
        if db is None:
            # Autocommit: each statement below is one transaction, atomic on its own.
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
            db.execute(
                "CREATE TABLE IF NOT EXISTS results"
                " (key TEXT PRIMARY KEY, data BLOB NOT NULL, metadata TEXT NOT NULL)"
            )
            self._local.db = db
        return db

    def put(self, key, data, metadata):
        self._db().execute(
            "INSERT OR REPLACE INTO results VALUES (?, ?, ?)",
            (key, bytes(data), json.dumps(dict(metadata))),
        )

    def put_if_absent(self, key, data, metadata):
        try:
            self._db().execute(
                "INSERT INTO results VALUES (?, ?, ?)",
                (key, bytes(data), json.dumps(dict(metadata))),
            )
        except sqlite3.IntegrityError:  # the primary key is taken: someone else won
            return False
        return True

    def get(self, key):
        sql = "SELECT data, metadata FROM results WHERE key = ?"
        row = self._db().execute(sql, (key,)).fetchone()
        return None if row is None else (row[0], json.loads(row[1]))

    def head(self, key):
        sql = "SELECT metadata FROM results WHERE key = ?"
        row = self._db().execute(sql, (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def delete(self, key):
        return self._db().execute("DELETE FROM results WHERE key = ?", (key,)).rowcount > 0

    def exists_many(self, keys):  # optional: one query for many keys
        found = set()
        for i in range(0, len(keys), 500):
            chunk = keys[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            rows = self._db().execute(f"SELECT key FROM results WHERE key IN ({marks})", chunk)
            found.update(key for (key,) in rows)
        return [key in found for key in keys]

    def list(self, prefix=""):
        folder = prefix.rstrip("/") + "/" if prefix else ""
        rows = self._db().execute(
            "SELECT key FROM results WHERE substr(key, 1, ?) = ? ORDER BY key",
            (len(folder), folder),
        )
        return [key for (key,) in rows]


class SQLiteResult(StorageResult):
    """Results stored in a SQLite database file."""

    def __init__(self, path, location=None, serializer=None, *, value=None, verify=True):
        storage = SQLiteStorage(path)
        super().__init__(storage, location, serializer, value=value, verify=verify)


if __name__ == "__main__":  # python examples/sqlite_backend.py
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        r = SQLiteResult(os.path.join(folder, "results.db"), location="{task_name}.pkl")
        written = r.write({"rows": 3}, task_name="clean")
        print(written.location, r.read(written.location).value)
