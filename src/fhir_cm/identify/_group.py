"""Who a Group screening ranks: the Patients the Group lists as members on the day assessed, and those
of the Groups it lists, followed down.

The Group's ``member`` list, read before its export, is the scope — not the Patients the export
returned: an incremental export (``_since``) returns only the Patients that changed, and a member of
whom the server holds nothing new (or nothing at all) is still one of the panel, ranked from the facts
kept of them, or no candidate. A member entry counts when it is not ``inactive`` and its ``period``
holds the day assessed (an end dated that day still counts; one dated to a month or a year counts to
its last day, as a start counts from its first). A member that is a Group (a programme made of its
clinics' Groups) counts so too, and its members are the scope's: followed ``GROUP_DEPTH`` levels down,
each Group once (a Group listing back one that lists it ends there). A member that is a Practitioner,
or a Patient or Group of another server (an absolute reference at another base), is none.

A Group that lists no members but defines them (``characteristic``: whoever has diabetes) cannot be
ranked: no FHIR server lists who matches (its ``$export`` covers the members it lists, none), so it is
refused, saying so, rather than ranked as no one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, Collection, Mapping
from typing import Any

from pydantic import BaseModel, Field

from ..errors import FhirCmError
from ..fhir import BulkExportFailed, ResourceNotFound, missing_group
from ..mapping import local_reference, read_day

__all__ = ["GROUP_DEPTH", "GroupNotListed", "GroupScope", "expand_group", "group_members", "members_unlisted"]

#: How many levels of Groups below the one asked for are followed (a programme's Group of clinics'
#: Groups of wards' Groups is two); a deeper chain is refused rather than ranked in part.
GROUP_DEPTH = 5

#: Reads a Group by id (``AsyncFhirClient.read`` with the type bound).
ReadGroup = Callable[[str], Awaitable[Mapping[str, Any]]]


class GroupNotListed(FhirCmError):
    """A Group whose members cannot be listed: defined by characteristics, or nested too deep. The
    command line's usage error (exit 2): no run of that Group will do, another Group or none will."""


class GroupScope(BaseModel):
    """Whom a Group's run ranks, and which Groups' exports read them."""

    patients: list[str] = Field(description="The Patients the Groups list on the day assessed, each once.")
    groups: list[str] = Field(description="The Group asked for, then those followed into, each once.")
    listing: list[str] = Field(
        description="The Groups followed into that list a Patient on the day (each exported for its Patients)."
    )
    members: dict[str, list[str]] = Field(
        default_factory=dict,
        description="The Patients each Group exported (the one asked for, and those of ``listing``) lists itself.",
    )


def group_members(group: Mapping[str, Any], as_of: dt.date, bases: Collection[str] = ()) -> list[str]:
    """The ids of the Patients ``group`` lists as members on ``as_of``, each once, in the Group's order."""
    return _entries(group, as_of, bases, "Patient")


def members_unlisted(group: Mapping[str, Any]) -> str | None:
    """Why ``group`` lists no members to rank though it has some (None: it lists them, or has none).

    A definitional Group — R4 ``actual: false``, R5 ``membership: definitional``, or ``characteristic``
    without any ``member`` — says who belongs, not who does; one whose ``quantity`` counts members it
    does not list holds them elsewhere. A Group actual and empty has no one, and is ranked so."""
    if isinstance(group.get("member"), list) and group["member"]:
        return None
    if group.get("characteristic") or group.get("actual") is False or group.get("membership") == "definitional":
        return "is defined by characteristics, not by a list of members"
    quantity = group.get("quantity")
    if isinstance(quantity, int) and quantity > 0:
        return f"counts {quantity} members but lists none"
    return None


async def expand_group(read: ReadGroup, group_id: str, as_of: dt.date, bases: Collection[str] = ()) -> GroupScope:
    """The Patients of ``group_id`` and of the Groups it lists (``GROUP_DEPTH`` levels down) on ``as_of``.

    Raises ``GroupNotListed`` for a Group among them defined by characteristics, or a chain deeper than
    followed, and ``BulkExportFailed`` for a Group the server does not have — each before anything is read."""
    scope = GroupScope(patients=[], groups=[], listing=[])
    level, parents = [group_id], {group_id: group_id}
    for depth in range(GROUP_DEPTH + 1):
        below: list[str] = []
        for gid in level:
            group = await _read(read, gid, group_id if gid != group_id else None)
            if (why := members_unlisted(group)) is not None:
                raise GroupNotListed(_refusal(gid, group_id, why))
            patients = group_members(group, as_of, bases)
            scope.groups.append(gid)
            if depth and patients:
                scope.listing.append(gid)
            if not depth or patients:
                scope.members[gid] = patients
            scope.patients += [p for p in patients if p not in scope.patients]
            for nested in _entries(group, as_of, bases, "Group"):
                if nested not in parents:
                    parents[nested] = gid
                    below.append(nested)
        if not below:
            return scope
        if depth == GROUP_DEPTH:
            raise GroupNotListed(
                f"Group {below[0]!r} is nested more than {GROUP_DEPTH} Groups below {group_id!r} "
                f"(by {_chain(parents, below[0])}); fhir-cm follows {GROUP_DEPTH} levels: give a Group nearer "
                "the patients, or one that lists them"
            )
        level = below
    return scope  # pragma: no cover - the loop returns or raises at its last level


def _refusal(gid: str, asked: str, why: str) -> str:
    within = f" (listed by Group {asked!r}, directly or through its Groups)" if gid != asked else ""
    return (
        f"Group {gid!r}{within} {why}; fhir-cm ranks only the members a Group lists: "
        "give a Group that lists its members (member), or run without --group to rank everyone"
    )


def _chain(parents: Mapping[str, str], gid: str) -> str:
    """``a → b → c``: how the Group asked for reaches ``gid``."""
    chain = [gid]
    while parents[chain[-1]] != chain[-1]:
        chain.append(parents[chain[-1]])
    return " → ".join(reversed(chain))


async def _read(read: ReadGroup, gid: str, listed_by: str | None) -> Mapping[str, Any]:
    """The Group ``gid``; one the server does not have said so, with which Group listed it."""
    try:
        return await read(gid)
    except (ResourceNotFound, ValueError):  # ValueError: no FHIR id, so no Group's either
        by = f" (listed as a member within Group {listed_by!r})" if listed_by else ""
        raise BulkExportFailed(missing_group(gid) + by) from None


def _entries(group: Mapping[str, Any], as_of: dt.date, bases: Collection[str], kind: str) -> list[str]:
    """The ids of the ``kind`` resources ``group`` lists as members on ``as_of``, each once, in order."""
    ids: list[str] = []
    members = group.get("member")
    for member in members if isinstance(members, list) else []:
        if not isinstance(member, Mapping) or member.get("inactive") is True or not _during(member, as_of):
            continue
        entity = member.get("entity")
        literal = entity.get("reference") if isinstance(entity, Mapping) else None
        ref = local_reference(literal, bases) if isinstance(literal, str) else None
        if ref is not None and ref[0] == kind and ref[1] not in ids:
            ids.append(ref[1])
    return ids


def _during(member: Mapping[str, Any], as_of: dt.date) -> bool:
    """Whether the member's ``period`` (none: always) holds ``as_of``: started by then, not ended before."""
    period = member.get("period")
    if not isinstance(period, Mapping):
        return True
    start, end = period.get("start"), period.get("end")
    first = read_day(start) if isinstance(start, str) else None
    last = read_day(end, last=True) if isinstance(end, str) else None
    return (first is None or first <= as_of) and (last is None or as_of <= last)
