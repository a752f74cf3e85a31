"""What the FHIR façade served of each case, kept between starts of the API.

A worker starting up maps every case to FHIR to index the façade's searches: milliseconds a case,
most of a minute on 10,000 cases, and again in every worker and at every restart. The store keeps,
per case and FHIR version, what the façade made of it — a payload in the façade's own encoding,
opaque here — with the stamp of the case it was made from (:class:`CaseStamp`) and ``made_with``, a
fingerprint of what made it (the code, the mapping rules, the façade's settings). A copy is handed
back only while both still hold, so a case changed since, or an upgrade, maps again; nothing else
decides whether a copy is current. Derived data, never a source of truth: losing the table costs one
slow start.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from ._dialect import insert
from ._stamps import CaseStamp
from ._tables import FacadeCopyRow
from ._types import connection_of

__all__ = ["FacadeCopy", "facade_copies", "keep_facade_copies"]

#: Rows written per statement.
_AT_ONCE = 100


class FacadeCopy(NamedTuple):
    """What the façade made of a case, and the stamp of the case it made it from."""

    stamp: CaseStamp
    payload: bytes


def facade_copies(
    session: Session, fhir_version: str, made_with: str, stamps: Mapping[str, CaseStamp]
) -> dict[str, bytes]:
    """The kept payloads of the cases of ``stamps`` that were made with ``made_with`` from a case whose
    stamp is the one given: the others must be made again."""
    if not stamps:
        return {}
    query = select(
        FacadeCopyRow.case_id,
        FacadeCopyRow.revision,
        FacadeCopyRow.case_updated_at,
        FacadeCopyRow.resources_at,
        FacadeCopyRow.resources,
        FacadeCopyRow.payload,
    ).where(
        FacadeCopyRow.fhir_version == fhir_version,
        FacadeCopyRow.made_with == made_with,
        FacadeCopyRow.case_id.in_(list(stamps)),
    )
    return {
        case_id: bytes(payload)
        for case_id, revision, updated_at, resources_at, resources, payload in connection_of(session).execute(query)
        if stamps[case_id] == CaseStamp(revision, updated_at, resources_at, resources)
    }


def keep_facade_copies(
    session: Session, fhir_version: str, made_with: str, copies: Mapping[str, FacadeCopy], *, rewrite: bool = False
) -> None:
    """Keep these copies, each in place of the case's earlier one in that version — unless that one was
    made as this one was (another worker's, moments ago): it holds the same, and rewriting it would write
    the payload to the database's log again. ``rewrite``: replace those too (the kept one could not be
    read). Written in case id order, so that two workers keeping the same cases at once wait for each
    other, not deadlock."""
    rows = [
        {
            "case_id": case_id,
            "fhir_version": fhir_version,
            "made_with": made_with,
            "revision": copy.stamp.revision,
            "case_updated_at": copy.stamp.updated_at,
            "resources_at": copy.stamp.resources_at,
            "resources": copy.stamp.resources,
            "payload": copy.payload,
        }
        for case_id, copy in sorted(copies.items())
    ]
    for n in range(0, len(rows), _AT_ONCE):
        stmt = insert(session, FacadeCopyRow).values(rows[n : n + _AT_ONCE])
        new = stmt.excluded
        replaced = ("made_with", "revision", "case_updated_at", "resources_at", "resources", "payload")
        connection_of(session).execute(
            stmt.on_conflict_do_update(
                index_elements=[FacadeCopyRow.case_id, FacadeCopyRow.fhir_version],
                set_={name: new[name] for name in replaced},
                where=None
                if rewrite
                else or_(
                    FacadeCopyRow.made_with != new.made_with,
                    FacadeCopyRow.revision != new.revision,
                    FacadeCopyRow.case_updated_at != new.case_updated_at,
                    FacadeCopyRow.resources_at.is_distinct_from(new.resources_at),
                    FacadeCopyRow.resources != new.resources,
                ),
            )
        )
