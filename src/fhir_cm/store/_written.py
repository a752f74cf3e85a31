"""The dates a case's resources wrote as a year or a month, kept beside the case they were read into.

The domain holds days: a referral the hospital wrote as due "2024-06" is held as due by 2024-06-30.
What was written is in the case's stored resources (``mapping.dates_as_written`` reads it there), but
a list of every case — the caseload, on a latency budget — cannot read every case's resources on
each request. So the map (JSON pointer into the case → the date as written) is kept in the case's
row (``cases.dates_as_written``), worked out by the writers that store the resources (a pull, an
import, the transitions tracker) and carried along by every other save of the case: an entry stays
while the day it points at is the one it was read from, and goes once someone changes that day (it
is then the case's own, as the case's read says it).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from fhir_cm.domain import Case

from ..mapping import FhirVersion, ResourceKey, dates_as_written
from ._resources import StoredResource, get_resources
from ._tables import ResourceRow
from ._types import connection_of

__all__ = ["carried_as_written", "copies_by_key", "copies_of_cases", "stored_dates_as_written"]

#: A copy of a resource at hand, by key: its ``content_hash`` and its JSON (a ledger's server copy).
Known = Mapping[ResourceKey, tuple[str | None, Mapping[str, Any] | None]]

_MISSING = object()


def carried_as_written(before: Any, after: Any, written: Mapping[str, str] | None) -> dict[str, str]:
    """The entries of ``written`` (pointers into the case JSON ``before``) that still hold for the case
    JSON ``after``: the same value at the pointer, reached through the same entities (a list item with
    an ``id`` must be the same one, so a list that moved points at nothing it was not read from)."""
    return {pointer: text for pointer, text in (written or {}).items() if _same_at(before, after, pointer)}


def _same_at(before: Any, after: Any, pointer: str) -> bool:
    a, b = before, after
    for token in pointer.split("/")[1:]:
        a, b = _step(a, token), _step(b, token)
        if a is _MISSING or b is _MISSING:
            return False
        if isinstance(a, dict) and isinstance(b, dict) and a.get("id") != b.get("id"):
            return False
    return bool(a == b and a is not None)


def _step(value: Any, token: str) -> Any:
    if isinstance(value, dict):
        return value.get(token, _MISSING)
    if isinstance(value, list) and token.isdigit() and int(token) < len(value):
        return value[int(token)]
    return _MISSING


def copies_by_key(resources: Iterable[StoredResource]) -> dict[ResourceKey, tuple[FhirVersion, Mapping[str, Any]]]:
    """Stored resources as ``mapping.dates_as_written`` takes them: by key, with their FHIR version."""
    return {ResourceKey(r.resource_type, r.key): (r.fhir_version, r.raw) for r in resources}


def copies_of_cases(
    session: Session, case_ids: Iterable[str], known: Known
) -> dict[str, dict[ResourceKey, tuple[FhirVersion, Mapping[str, Any]]]]:
    """The stored resources of each of ``case_ids`` as ``copies_by_key`` gives them (a case with none
    left out), for a writer working through a few cases at a time (a pull's merge).

    A pull updating a case merges a few of its resources but works out the dates as written of all of
    them; the JSON of most is at hand already, as the ledger's copies. Where ``known`` holds a copy
    with the stored resource's content (the same ``content_hash``: only ``id`` and ``meta`` may
    differ, which write no date), that copy stands for it and the stored JSON is not read; the
    others' JSON is read, in one query.
    """
    wanted = list(dict.fromkeys(case_ids))
    out: dict[str, dict[ResourceKey, tuple[FhirVersion, Mapping[str, Any]]]] = {}
    if not wanted:
        return out
    heads = select(
        ResourceRow.case_id,
        ResourceRow.resource_type,
        ResourceRow.key,
        ResourceRow.fhir_version,
        ResourceRow.content_hash,
    ).where(ResourceRow.case_id.in_(wanted))
    unread: list[tuple[str, str]] = []
    for row in connection_of(session).execute(heads):
        key = ResourceKey(row.resource_type, row.key)
        hashed, copy = known.get(key, (None, None))
        if copy is not None and hashed == row.content_hash:
            out.setdefault(row.case_id, {})[key] = (row.fhir_version, copy)
        else:
            unread.append((row.resource_type, row.key))
    for start in range(0, len(unread), _READ_AT_ONCE):
        pairs = unread[start : start + _READ_AT_ONCE]
        bodies = select(
            ResourceRow.case_id, ResourceRow.resource_type, ResourceRow.key, ResourceRow.fhir_version, ResourceRow.raw
        ).where(tuple_(ResourceRow.resource_type, ResourceRow.key).in_(pairs))
        for row in connection_of(session).execute(bodies):
            out.setdefault(row.case_id, {})[ResourceKey(row.resource_type, row.key)] = (row.fhir_version, row.raw)
    return out


#: How many stored resources' JSON ``copies_of_cases`` reads per query (well below any bound on a
#: statement's parameters).
_READ_AT_ONCE = 400


def stored_dates_as_written(session: Session, case: Case, identifier_system: str) -> dict[str, str]:
    """The days of ``case`` its stored resources write as a year or a month now: JSON pointer into the
    case → the date as written (``mapping.dates_as_written``); empty for a case with none stored."""
    return dates_as_written(case, copies_by_key(get_resources(session, case.id)), identifier_system)
