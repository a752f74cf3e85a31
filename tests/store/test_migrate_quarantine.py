"""Upgrading a store whose quarantine holds the same resource many times (every pull added a row):
one entry per resource is left, on both backends."""

from __future__ import annotations

import datetime as dt
import json

from alembic import command
from sqlalchemy import text

from fhir_cm.store import alembic_config, add_quarantine, list_quarantine, open_store
from fhir_cm.store._engine import make_engine

T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
A = "http://a.example/fhir"
B = "http://b.example/fhir"


def goal(rid: str, version: str | None, status: str = "cancelled") -> str:
    meta = {"meta": {"versionId": version}} if version else {}
    return json.dumps({"resourceType": "Goal", "id": rid, **meta, "lifecycleStatus": status})


#: (source, type, server id, raw, minutes after T0), as pulls before the upgrade wrote them.
ROWS = [
    (A, "Goal", "1", goal("1", "2"), 0),
    (A, "Goal", "1", goal("1", "2"), 1),
    (A, "Goal", "1", goal("1", "3", "rejected"), 5),
    (A, "Goal", "1", goal("1", "3", "rejected"), 6),
    (A, "Goal", "1", goal("1", "3", "rejected"), 7),
    (B, "Goal", "1", goal("1", "2"), 3),  # the same id on another server: another resource
    (A, "Goal", "2", goal("2", None), 0),  # no versions: the text tells copies apart
    (A, "Goal", "2", goal("2", None), 2),
    (A, "Goal", "3", goal("3", "1"), 0),  # flip-flop: the last read wins
    (A, "Goal", "3", goal("3", "2", "rejected"), 1),
    (A, "Goal", "3", goal("3", "1"), 2),
    (A, None, None, '{"oops', 0),  # not even JSON, no id: known by its text
    (A, None, None, '{"oops', 4),
    (A, None, None, '{"other', 4),
]


def test_upgrade_collapses_the_copies_of_each_resource(empty_url: str) -> None:
    engine = make_engine(empty_url)
    with engine.connect() as conn, conn.begin():
        command.upgrade(alembic_config(connection=conn), "0021_cds_cards_issued_at")
        for n, (source, rtype, rid, raw, minutes) in enumerate(ROWS):
            conn.execute(
                text(
                    "INSERT INTO quarantine (source, resource_type, server_id, reason, raw, received_at)"
                    " VALUES (:source, :rtype, :rid, :reason, :raw, :at)"
                ),
                {
                    "source": source,
                    "rtype": rtype,
                    "rid": rid,
                    "reason": f"reason {n}",
                    "raw": raw,
                    "at": (T0 + dt.timedelta(minutes=minutes)).replace(tzinfo=None),
                },
            )
    engine.dispose()

    with open_store(empty_url) as store:
        with store.session(read_only=True) as s:
            entries = {(q.source, q.server_id, q.raw): q for q in list_quarantine(s)}
        with store.session() as s:  # and a pull reading one again refreshes its entry
            again = add_quarantine(
                s, source=A, raw=json.loads(goal("1", "3", "rejected")), reason="r", now=T0 + dt.timedelta(hours=1)
            )

    def at(minutes: int) -> dt.datetime:
        return T0 + dt.timedelta(minutes=minutes)

    summary = {k: (q.version, q.reason, q.received_at, q.last_seen_at) for k, q in entries.items()}
    assert summary == {
        (A, "1", goal("1", "3", "rejected")): ("3", "reason 4", at(5), at(7)),
        (B, "1", goal("1", "2")): ("2", "reason 5", at(3), at(3)),
        (A, "2", goal("2", None)): (entries[A, "2", goal("2", None)].version, "reason 7", at(0), at(2)),
        (A, "3", goal("3", "1")): ("1", "reason 10", at(0), at(2)),
        (A, None, '{"oops'): (entries[A, None, '{"oops'].version, "reason 12", at(0), at(4)),
        (A, None, '{"other'): (entries[A, None, '{"other'].version, "reason 13", at(4), at(4)),
    }
    assert entries[A, "2", goal("2", None)].version.startswith("sha256:")
    assert again == (entries[A, "1", goal("1", "3", "rejected")].id, False)
