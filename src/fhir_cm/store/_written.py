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

from sqlalchemy.orm import Session

from fhir_cm.domain import Case

from ..mapping import FhirVersion, ResourceKey, dates_as_written
from ._resources import StoredResource, get_resources

__all__ = ["carried_as_written", "copies_by_key", "stored_dates_as_written"]

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


def stored_dates_as_written(session: Session, case: Case, identifier_system: str) -> dict[str, str]:
    """The days of ``case`` its stored resources write as a year or a month now: JSON pointer into the
    case → the date as written (``mapping.dates_as_written``); empty for a case with none stored."""
    return dates_as_written(case, copies_by_key(get_resources(session, case.id)), identifier_system)
