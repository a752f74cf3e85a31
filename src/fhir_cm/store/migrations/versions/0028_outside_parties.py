"""Parties another server keeps, read before this revision as the local records of their ids, become
outside parties (``Party.server``) in the stored cases.

A pull or an import read ``https://other.example/fhir/Practitioner/7`` (a care-team member, the
episode's manager, a stay's provider, a referral's target or requester, the referral source) as the
local ``Practitioner/7``. Left so, the case showed the wrong person, gave the local practitioner 7
the case, and — now that copies are read at their own base — the next push would have written the
local party's reference over the other server's. Each such party is matched to the element it was
read from (the episode's ``careManager``, the CareTeam participant of the member's id, the Encounter
and ServiceRequest or Task of the stay's or referral's id), in every copy the store holds of the case:
the ledger's server copies at their server's base, the imported copies at their source (none: a
file's own base was made relative, so every absolute reference there is elsewhere). Where that
element names the party's type and id at another base, the party gets that base. A case none of whose
copies names a party elsewhere is not written. The rules are copied here as the mapping has them at
this revision, so that a later change to it cannot change what this migration does.

Revision ID: 0028_outside_parties
Revises: 0027_case_dates_as_written
Create Date: 2026-12-07
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0028_outside_parties"
down_revision: str | None = "0027_case_dates_as_written"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Cases read per batch, with their copies.
BATCH = 200

_TYPES = {"practitioner": "Practitioner", "organisation": "Organization", "related-person": "RelatedPerson"}
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")
_SERVER = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s]+(/[^?#\s]*)?$")
_REFERRAL_SOURCE = "/referral-source"

_CASES = sa.table(
    "cases", sa.column("case_id", sa.String), sa.column("case_manager_id", sa.String), sa.column("data", sa.JSON)
)
_LEDGER = sa.table(
    "sync_ledger",
    sa.column("case_id", sa.String),
    sa.column("server_base", sa.String),
    sa.column("server_copy", sa.JSON),
)
_RESOURCES = sa.table(
    "resources", sa.column("case_id", sa.String), sa.column("source", sa.String), sa.column("raw", sa.JSON)
)


def _elsewhere(reference: Any, own: str | None) -> tuple[str, str, str] | None:
    """``(base, type, id)`` of a Reference by an absolute URL at another base than ``own``, else None."""
    literal = reference.get("reference") if isinstance(reference, Mapping) else None
    if not isinstance(literal, str) or "://" not in literal:
        return None
    parts = literal.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 4 or not _TYPE.match(parts[-2]) or not _ID.match(parts[-1]):
        return None
    base = "/".join(parts[:-2])
    if own is not None and base.rstrip("/").casefold() == own.rstrip("/").casefold():
        return None
    return (base, parts[-2], parts[-1]) if _SERVER.match(base) and len(base) <= 1000 else None


def _mark(party: Any, reference: Any, own: str | None) -> bool:
    """Give ``party`` (a stored Party's JSON) the base ``reference`` names it at, when that is another's."""
    if not isinstance(party, dict) or party.get("server") or party.get("kind") not in _TYPES:
        return False
    found = _elsewhere(reference, own)
    if found is None or (found[1], found[2]) != (_TYPES[party["kind"]], party.get("id")):
        return False
    party["server"] = found[0]
    return True


def _participant_id(item: Mapping[str, Any]) -> str:
    own = item.get("id")
    if isinstance(own, str) and own:
        return own
    digest = hashlib.sha1(json.dumps(item, sort_keys=True, default=str).encode()).hexdigest()
    return f"p{digest[:24]}"


def _names(resource: Mapping[str, Any]) -> set[str]:
    """What a case's entity may be called by in ``resource``: its identifier values and its id."""
    names = {i.get("value") for i in resource.get("identifier") or () if isinstance(i, Mapping)}
    names.add(resource.get("id"))
    return {n for n in names if isinstance(n, str)}


def _by_id(items: Any) -> dict[str, dict[str, Any]]:
    return {i["id"]: i for i in items or () if isinstance(i, dict) and isinstance(i.get("id"), str)}


def _repair(data: dict[str, Any], copies: list[tuple[Mapping[str, Any], str | None]]) -> bool:
    """Mark the parties of one case's data read from another server's references; whether any was."""
    team, stays, referrals = _by_id(data.get("team")), _by_id(data.get("stays")), _by_id(data.get("referrals"))
    tasks = {}
    for resource, own in copies:
        if resource.get("resourceType") == "Task":
            for name in _names(resource):
                tasks[name.removesuffix("-task")] = (resource, own)
    changed = False
    for resource, own in copies:
        rtype = resource.get("resourceType")
        if rtype == "EpisodeOfCare":
            changed |= _mark(data.get("case_manager"), resource.get("careManager"), own)
            for ext in resource.get("extension") or ():
                if isinstance(ext, Mapping) and str(ext.get("url", "")).endswith(_REFERRAL_SOURCE):
                    changed |= _mark(data.get("referral_source"), ext.get("valueReference"), own)
        elif rtype == "CareTeam":
            for item in resource.get("participant") or ():
                if isinstance(item, Mapping) and (member := team.get(_participant_id(item))) is not None:
                    changed |= _mark(member.get("party"), item.get("member"), own)
        elif rtype == "Encounter":
            for name in _names(resource) & stays.keys():
                changed |= _mark(stays[name].get("provider"), resource.get("serviceProvider"), own)
        elif rtype == "ServiceRequest":
            for name in _names(resource) & referrals.keys():
                referral = referrals[name]
                for performer in resource.get("performer") or ():
                    changed |= _mark(referral.get("target"), performer, own)
                task = tasks.get(name)  # the requester is the Task's where it has one, as the case reads it
                asked, at = (task[0].get("requester"), task[1]) if task else (resource.get("requester"), own)
                changed |= _mark(referral.get("requester"), asked, at)
    return changed


def _batches(conn: sa.Connection) -> Iterator[Sequence[Any]]:
    last = ""
    while True:
        rows = conn.execute(
            sa.select(_CASES.c.case_id, _CASES.c.data)
            .where(_CASES.c.case_id > last)
            .order_by(_CASES.c.case_id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        yield rows
        last = rows[-1].case_id


def upgrade() -> None:
    conn = op.get_bind()
    for rows in _batches(conn):
        ids = [r.case_id for r in rows]
        copies: dict[str, list[tuple[Mapping[str, Any], str | None]]] = {i: [] for i in ids}
        ledger = sa.select(_LEDGER.c.case_id, _LEDGER.c.server_copy, _LEDGER.c.server_base).where(
            _LEDGER.c.case_id.in_(ids), _LEDGER.c.server_copy.is_not(None)
        )
        stored = sa.select(_RESOURCES.c.case_id, _RESOURCES.c.raw, _RESOURCES.c.source).where(
            _RESOURCES.c.case_id.in_(ids)
        )
        for case_id, resource, own in [*conn.execute(ledger), *conn.execute(stored)]:
            if isinstance(resource, dict) and "://" in json.dumps(resource):
                copies[case_id].append((resource, own))
        for row in rows:
            data = row.data
            if not copies[row.case_id] or not isinstance(data, dict) or not _repair(data, copies[row.case_id]):
                continue
            manager = data.get("case_manager")
            local_manager = manager.get("id") if isinstance(manager, dict) and not manager.get("server") else None
            conn.execute(
                _CASES.update().where(_CASES.c.case_id == row.case_id).values(data=data, case_manager_id=local_manager)
            )


def downgrade() -> None:
    """Nothing to undo: a revision before this one reads a party's ``server`` as an unknown field, and
    refuses the case (``fhir-cm check`` names it) rather than read it as the local record again."""
