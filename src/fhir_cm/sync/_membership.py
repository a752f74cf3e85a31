"""Which case a resource pulled from a server belongs to.

Only the EpisodeOfCare names its case outright (its business identifier *is* the case id). The
others are placed by what the adapter already knows, most certain first: the ledger (the resource
was pushed or pulled before), the derived identifiers (``<case>-careplan``, ``<referral>-task``),
references to resources the ledger places, references *to* it from a resource already placed in
the same run (a case's CarePlan names its Conditions, Goals and ServiceRequests: this is what places
the parts of a closed case on a first pull), and finally the patient, when exactly one open case is
theirs. A resource none of these place belongs to no case here and is left alone.
"""

from __future__ import annotations

import functools
import sqlite3
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from types import EllipsisType
from typing import Any

from sqlalchemy.orm import Session

from ..domain import CaseStatus
from ..mapping import (
    PATIENT_PATHS,
    ResourceKey,
    iter_references,
    parse_reference,
    patient_of,
)
from ..mapping import full_url_bases as own_bases
from ..store import (
    LedgerEntry,
    Store,
    UnreadableCase,
    case_revisions,
    get_case,
    find_ledger,
    get_ledger,
    ledger_by_server_id,
)

__all__ = [
    "OPEN_STATUSES",
    "RunEpisodes",
    "ServerIdLookup",
    "case_of",
    "case_references",
    "cases_patient_ids",
    "ledger_lookup",
    "own_bases",
    "patient_ids",
    "patient_of",
]

#: ``(type, server id)`` → the ledger entry of that resource on the server, or None.
ServerIdLookup = Callable[[str, str], LedgerEntry | None]

OPEN_STATUSES = (CaseStatus.REFERRED, CaseStatus.WAITLIST, CaseStatus.ACTIVE, CaseStatus.ON_HOLD)
_SUFFIXES = {"CarePlan": "-careplan", "CareTeam": "-careteam"}
_PARTY_TYPES = frozenset({"Patient", "Practitioner", "Organization", "RelatedPerson"})


def case_references(resource: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """``(type, id)`` of the resources ``resource`` refers to, parties and its patient left out."""
    for literal in iter_references({k: v for k, v in resource.items() if k not in PATIENT_PATHS}):
        parsed = parse_reference(literal)
        if parsed is not None and parsed[0] not in _PARTY_TYPES:
            yield parsed


class RunEpisodes:
    """The cases whose EpisodeOfCare a pull took in and has not merged yet: each one's patient, and
    whether the episode says the case is open.

    A pull merges its cases once, at its end; until then the store has the cases as they were. What
    places a later resource by its patient ("the one open case of the patient") is the store's open
    cases with these in place of theirs: a case the run opened counts, one the run closed does not.

    They are kept in a SQLite database (the pull's scratch file, ``connect`` opening it at the first
    episode; by default one in memory), not in Python objects: a first pull takes in an episode per
    case, and its memory is not to grow with the number of cases.
    """

    def __init__(self, connect: Callable[[], sqlite3.Connection] | None = None) -> None:
        self._connect = connect or _memory_database
        self._db: sqlite3.Connection | None = None

    def _table(self) -> sqlite3.Connection:
        if self._db is None:
            self._db = self._connect()
            self._db.executescript(_EPISODES)
        return self._db

    def add(self, case_id: str, patient_id: str, status: CaseStatus) -> None:
        self._table().execute(
            "INSERT INTO run_episodes (case_id, patient, open) VALUES (?, ?, ?) "
            "ON CONFLICT (case_id) DO UPDATE SET patient = excluded.patient, open = excluded.open",
            (case_id, patient_id, status in OPEN_STATUSES),
        )

    def clear(self) -> None:
        """Forget them all (merged: the store has them now)."""
        if self._db is not None:
            self._db.execute("DELETE FROM run_episodes")

    def __contains__(self, case_id: object) -> bool:
        if self._db is None or not isinstance(case_id, str):
            return False
        return self._db.execute("SELECT 1 FROM run_episodes WHERE case_id = ?", (case_id,)).fetchone() is not None

    def __bool__(self) -> bool:
        return self._db is not None and self._db.execute("SELECT 1 FROM run_episodes LIMIT 1").fetchone() is not None

    def __len__(self) -> int:
        return 0 if self._db is None else int(self._db.execute("SELECT count(*) FROM run_episodes").fetchone()[0])

    def open_cases(self, patient_id: str, stored_open: Iterable[str]) -> set[str]:
        """The patient's open cases: ``stored_open`` (the store's) as this run's episodes left them."""
        found = set(stored_open)
        if self._db is None:
            return found
        if found:
            marks = ",".join("?" * len(found))
            query = f"SELECT case_id FROM run_episodes WHERE case_id IN ({marks})"
            found.difference_update(c for (c,) in self._db.execute(query, tuple(found)))
        query = "SELECT case_id FROM run_episodes WHERE patient = ? AND open"
        found.update(c for (c,) in self._db.execute(query, (patient_id,)))
        return found


_EPISODES = """
CREATE TABLE IF NOT EXISTS run_episodes (
    case_id TEXT PRIMARY KEY,
    patient TEXT NOT NULL,
    open INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS run_episodes_patient ON run_episodes (patient, open);
"""


def _memory_database() -> sqlite3.Connection:
    return sqlite3.connect(":memory:", check_same_thread=False, isolation_level=None)


def case_of(
    session: Session,
    server_base: str,
    resource: Mapping[str, Any],
    key: ResourceKey,
    placed: Mapping[tuple[str, str], str] | None = None,
    referenced: Mapping[tuple[str, str], str] | None = None,
    *,
    known: LedgerEntry | None | EllipsisType = ...,
    by_server_id: ServerIdLookup | None = None,
    references: Sequence[tuple[str, str]] | None = None,
    episodes: RunEpisodes | None = None,
) -> str | None:
    """The id of the stored case ``resource`` belongs to, or None when nothing places it.

    ``placed`` maps ``(type, server id)`` of resources placed earlier in the same run but not yet
    in the ledger to their case; ``referenced`` maps ``(type, server id)`` of resources that
    resources placed earlier in the run refer to, to the case of the referring resource.
    ``known`` is the resource's own ledger entry (or None) when the caller already looked it up;
    ``by_server_id`` answers ledger lookups by server id (``ledger_lookup``: one query per type for a
    whole page) instead of one query each; ``references`` are the resource's ``case_references``
    when the caller has them already; ``episodes`` are the cases whose episode the run took in
    and has not stored yet (they count as stored, with the status their episode gives).
    """
    placed = placed or {}
    if by_server_id is None:
        by_server_id = functools.partial(ledger_by_server_id, session, server_base)
    if known is ...:
        known = get_ledger(session, server_base, key.type, key.value)
        if known is None and isinstance(resource.get("id"), str):
            known = by_server_id(key.type, resource["id"])
    if known is not None and known.case_id:
        return known.case_id
    if key.type == "EpisodeOfCare":
        return key.value
    suffix = _SUFFIXES.get(key.type)
    if suffix and key.value.endswith(suffix):
        case_id = key.value.removesuffix(suffix)
        if (episodes is not None and case_id in episodes) or case_revisions(session, ids=[case_id]):
            return case_id
    own_id = resource.get("id")
    if referenced and isinstance(own_id, str) and (key.type, own_id) in referenced:
        return referenced[(key.type, own_id)]
    for parsed in case_references(resource) if references is None else references:
        if parsed in placed:
            return placed[parsed]
        target = by_server_id(parsed[0], parsed[1])
        if target is not None and target.case_id:
            return target.case_id
    patient = patient_of(resource)
    if patient is not None:
        # Ids only, nothing decoded: a stored case this version cannot read still holds its resources.
        # The server may know the patient by an id of its own (a Patient the pusher created).
        known_patient = by_server_id("Patient", patient)
        party_id = known_patient.key if known_patient is not None else patient
        stored = case_revisions(session, patient=party_id, status=OPEN_STATUSES)
        open_ids = episodes.open_cases(party_id, stored) if episodes else set(stored)
        if len(open_ids) == 1:
            return next(iter(open_ids))
    return None


def ledger_lookup(
    session: Session, server_base: str, resources: Iterable[tuple[Mapping[str, Any], Sequence[tuple[str, str]]]]
) -> ServerIdLookup:
    """Ledger lookups by server id for what ``case_of`` may ask of these resources (each given with
    its ``case_references``) — themselves, the resources they refer to and their patients — read in
    one query per type rather than one each, without the entries' server copies (placing needs none)."""
    wanted: dict[str, set[str]] = defaultdict(set)
    for resource, references in resources:
        if isinstance(own := resource.get("id"), str) and isinstance(own_type := resource.get("resourceType"), str):
            wanted[own_type].add(own)
        for rtype, rid in references:
            wanted[rtype].add(rid)
        patient = patient_of(resource)
        if patient is not None:
            wanted["Patient"].add(patient)
    found: dict[tuple[str, str], LedgerEntry] = {}
    for rtype, ids in wanted.items():
        for entry in find_ledger(session, server_base, rtype, server_ids=ids, copies=False):
            if entry.server_id:
                found[(rtype, entry.server_id)] = entry
    return lambda rtype, rid: found.get((rtype, rid))


def patient_ids(session: Session, server_base: str, party_id: str) -> list[str]:
    """The ids a server may know a case's patient by: the party id (the EHR's), and the id of the
    Patient the pusher found or created for it, when that differs."""
    entry = get_ledger(session, server_base, "Patient", party_id)
    ids = [party_id]
    if entry is not None and entry.server_id and entry.server_id != party_id:
        ids.append(entry.server_id)
    return ids


def cases_patient_ids(store: Store, base: str, case_ids: Iterable[str]) -> list[str]:
    """The ids the server may know the patients of ``case_ids`` by (a case that cannot be read is
    left to ``track``, which says why)."""
    out: list[str] = []
    with store.session(read_only=True) as session:
        for cid in case_ids:
            try:
                case = get_case(session, cid)
            except UnreadableCase:
                continue
            if case is not None:
                out += patient_ids(session, base, case.patient.id)
    return out
