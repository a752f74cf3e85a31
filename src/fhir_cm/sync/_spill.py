"""Where a large pull keeps what it has taken in until its cases are merged: a scratch file.

A pull goes type by type over the whole server (a case's episode before its parts), so the parts of
one case arrive in as many phases as it has types. Merging each time the memory buffer filled read,
merged and saved every case once per type it had resources of: on a first pull of 100,000
resources, nine merges of each case where one does. So the buffer, when full, is written here
instead (raw JSON by case, on disk, not in memory), and the cases are merged once, at the end, a
few at a time. The file is scratch: nothing in it is the store's until merged, and the watermarks
never pass what is stored, so what a pull killed before its end had only here is fetched again by
the next one. Written without journal or sync (a crash loses nothing the server does not still have).

The file is SQLite's own temporary database (``connect("")``): made in the temporary directory
(``TMPDIR``) once its pages outgrow the memory given them, and removed from the directory as it is
made, so it ends with its process however that ends. A named file, removed by ``close``, outlived a
pull killed outright (the out-of-memory killer, ``kill -9`` past a grace period): a service
restarted after each such kill piled them up in the temporary directory.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable, Iterator, Mapping
from typing import Any


from .. import decimals
from ..mapping import ResourceKey
from ._intake import is_newer, version_of

__all__ = ["Spill", "newest"]

#: KiB of the scratch database's pages kept in memory (SQLite's default); the rest is in its file.
CACHE_KIB = 2000

_SCHEMA = """
CREATE TABLE held (
    seq INTEGER PRIMARY KEY,
    case_id TEXT NOT NULL,
    type TEXT NOT NULL,
    key TEXT NOT NULL,
    server_id TEXT,
    body BLOB NOT NULL
);
CREATE INDEX held_case ON held (case_id, seq);
CREATE INDEX held_server_id ON held (type, server_id);
CREATE TABLE referenced (
    type TEXT NOT NULL,
    server_id TEXT NOT NULL,
    case_id TEXT NOT NULL,
    PRIMARY KEY (type, server_id)
) WITHOUT ROWID;
"""


class Spill:
    """The resources a pull has taken in and not merged yet, by case, in a scratch SQLite database
    (created on first use, gone at ``close`` or with the process), and what they refer to that is
    still to come. Used by one thread at a time."""

    def __init__(self) -> None:
        self._db: sqlite3.Connection | None = None
        self.count = 0
        self.references = 0

    def __bool__(self) -> bool:
        return self.count > 0

    def connection(self) -> sqlite3.Connection:
        """The scratch file's connection (the file is created now if it was not yet): the pull keeps
        other scratch tables of its own in it (``RunEpisodes``)."""
        if self._db is None:
            db = sqlite3.connect("", check_same_thread=False, isolation_level=None)  # see the module docstring
            db.execute(f"PRAGMA cache_size = -{max(1, int(CACHE_KIB))}")
            db.execute("PRAGMA journal_mode = OFF")
            db.execute("PRAGMA synchronous = OFF")
            db.executescript(_SCHEMA)
            self._db = db
        return self._db

    def add(self, buffer: Mapping[str, Mapping[ResourceKey, Mapping[str, Any]]]) -> None:
        """Write a buffer's resources (case → key → resource), in the order they were taken in.

        Each is serialised as SQLite asks for its row, not all first: orjson's output keeps a buffer
        of at least 4 KB per resource, so a full buffer's rows made at once took four times its JSON.
        """
        if not any(buffer.values()):
            return
        rows = (
            (case_id, key.type, key.value, _server_id(resource), decimals.dumps(resource))
            for case_id, items in buffer.items()
            for key, resource in items.items()
        )
        db = self.connection()
        db.execute("BEGIN")
        db.executemany("INSERT INTO held (case_id, type, key, server_id, body) VALUES (?, ?, ?, ?, ?)", rows)
        db.execute("COMMIT")
        self.count += sum(len(items) for items in buffer.values())

    def sizes(self) -> dict[str, int]:
        """How many resources each case has here (a case's resources are merged in one go)."""
        if not self:
            return {}
        return dict(self.connection().execute("SELECT case_id, count(*) FROM held GROUP BY case_id ORDER BY case_id"))

    def cases_of(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The case of each ``(type, server id)`` held here: what places resources that refer to them."""
        if not self:
            return {}
        by_type: dict[str, set[str]] = {}
        for rtype, rid in wanted:
            by_type.setdefault(rtype, set()).add(rid)
        found: dict[tuple[str, str], str] = {}
        db = self.connection()
        for rtype, ids in by_type.items():
            listed = sorted(ids)
            for start in range(0, len(listed), 500):
                chunk = listed[start : start + 500]
                marks = ",".join("?" * len(chunk))
                query = f"SELECT server_id, case_id FROM held WHERE type = ? AND server_id IN ({marks})"
                for server_id, case_id in db.execute(query, (rtype, *chunk)):
                    found[(rtype, server_id)] = case_id
        return found

    def add_references(self, referenced: Mapping[tuple[str, str], str]) -> None:
        """Note the case of the resources that resources taken in refer to (``(type, server id)``
        → case), each under the first case noted for it: they place those resources when they come."""
        if not referenced:
            return
        db = self.connection()
        db.execute("BEGIN")
        db.executemany(
            "INSERT OR IGNORE INTO referenced (type, server_id, case_id) VALUES (?, ?, ?)",
            ((rtype, rid, case_id) for (rtype, rid), case_id in referenced.items()),
        )
        db.execute("COMMIT")
        self.references += len(referenced)

    def referenced_cases(self, wanted: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """The case noted (``add_references``) for each of ``wanted`` (``(type, server id)``) that has one."""
        if not self.references:
            return {}
        found: dict[tuple[str, str], str] = {}
        db = self.connection()
        query = "SELECT case_id FROM referenced WHERE type = ? AND server_id = ?"
        for key in set(wanted):
            row = db.execute(query, key).fetchone()
            if row is not None:
                found[key] = row[0]
        return found

    def take(self, case_ids: Iterable[str]) -> Iterator[tuple[str, ResourceKey, dict[str, Any]]]:
        """``(case, key, resource)`` of the cases given, in the order they were written (a later
        copy of a resource after an earlier one)."""
        if not self:
            return
        db = self.connection()
        wanted = list(case_ids)
        for start in range(0, len(wanted), 500):
            chunk = wanted[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT case_id, type, key, body FROM held WHERE case_id IN ({marks}) ORDER BY seq"
            for case_id, rtype, key, body in db.execute(query, chunk):
                yield case_id, ResourceKey(rtype, key), decimals.loads(body)

    def clear(self) -> None:
        if self._db is not None and self.count:
            self._db.execute("DELETE FROM held")
        self.count = 0

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None
        self.count = self.references = 0


def newest(
    into: dict[ResourceKey, Mapping[str, Any]], items: Iterable[tuple[ResourceKey, Mapping[str, Any]]]
) -> dict[ResourceKey, Mapping[str, Any]]:
    """``into`` with each of ``items`` put in unless it holds a newer version of that resource
    (items come in the order they were taken in: at equal versions the later one stands)."""
    for key, resource in items:
        earlier = into.get(key)
        if earlier is None or not is_newer(version_of(earlier), version_of(resource)):
            into[key] = resource
    return into


def _server_id(resource: Mapping[str, Any]) -> str | None:
    rid = resource.get("id")
    return rid if isinstance(rid, str) else None
