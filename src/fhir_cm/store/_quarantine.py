"""Quarantine: resources a pull or import could not parse or map, kept as received.

A bad resource must neither stop a pull nor vanish: it is set aside here with the reason, for a
person to look at, and the pull carries on.

Each resource has **one entry** per source (``Type/id``; one without an id is known by a hash of its
text). Pulls read the same resources again all the time (the overlap of every incremental pull, a
re-pull with ``--since``, transitions reading a patient's Encounters), so setting one aside again
only refreshes ``last_seen_at``; a new version of it, still bad, **replaces** the entry (raw text,
reason, version, and ``received_at`` starts again): the server no longer has the older one, and
what a person can put right is the resource as it is now. An older version read after a newer one
(numeric versionIds only) changes nothing. A copy of the resource later taken in clears its entry
(``clear_quarantine``); one read fine where nothing is taken in (the transitions tracker's
Encounters) clears an entry of another version (``settle_quarantine``).

A person may **dismiss** an entry (``dismiss_quarantine``: looked at, nothing to do — a resource the
server deleted, one that is not the adapter's): lists and counts leave it out from then on, and
reads of the same version keep it dismissed; a new version, still bad, brings it back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from .. import decimals
from ._dialect import insert, normal_base
from ._engine import without_nul
from ._tables import QuarantineRow
from ._types import utcnow

__all__ = [
    "QuarantinedResource",
    "SetAside",
    "add_quarantine",
    "clear_quarantine",
    "count_quarantine",
    "dismiss_quarantine",
    "list_quarantine",
    "settle_quarantine",
]

MAX_REASON = 1000


class QuarantinedResource(BaseModel):
    """A resource set aside; ``raw`` is the text as received (it may not even be valid JSON)."""

    model_config = ConfigDict(frozen=True)

    id: int
    source: str
    resource_type: str | None
    server_id: str | None
    version: str = Field(description="meta.versionId, or sha256:… of the text when the server keeps no versions.")
    reason: str
    raw: str
    received_at: dt.datetime = Field(description="When this version was first set aside.")
    last_seen_at: dt.datetime = Field(description="When a pull last read it (each pull reads an overlap again).")
    dismissed_at: dt.datetime | None = Field(default=None, description="When a person dismissed it, if one did.")
    dismissed_by: str | None = Field(default=None, description="Who dismissed it (API key id or cli:<user>).")


class SetAside(NamedTuple):
    """What ``add_quarantine`` did: the entry's id, and whether it is news — a new entry or a new
    version in it — rather than a read of what the entry holds (worth a warning only the first time)."""

    id: int
    news: bool


def add_quarantine(
    session: Session,
    *,
    source: str,
    raw: str | bytes | Mapping[str, Any],
    reason: str,
    resource_type: str | None = None,
    server_id: str | None = None,
    now: dt.datetime | None = None,
) -> SetAside:
    """Set a resource aside, or refresh its entry if it is there already.

    ``source`` is the server base URL or the imported file's name; ``reason`` is read by people
    and must not contain PHI. Type and server id are taken from ``raw`` when it is a mapping.
    """
    resource_type, server_id, key, version, text = _identity(raw, resource_type, server_id)
    now = now or utcnow()
    values = {"reason": reason[:MAX_REASON], "raw": text, "version": version}
    stmt = insert(session, QuarantineRow).values(
        source=source,
        entry_key=key,
        resource_type=resource_type,
        server_id=server_id,
        received_at=now,
        last_seen_at=now,
        **values,
    )
    where = (QuarantineRow.source == source, QuarantineRow.entry_key == key)
    while True:
        added = session.execute(stmt.on_conflict_do_nothing().returning(QuarantineRow.id)).scalar_one_or_none()
        if added is not None:
            return SetAside(int(added), news=True)
        held = session.execute(select(QuarantineRow.id, QuarantineRow.version).where(*where).with_for_update()).first()
        if held is not None:
            break
        # Cleared in between by another pull that took a copy in (PostgreSQL, several workers): add it again.
    if values["version"] == held.version:
        changes: dict[str, Any] = {"last_seen_at": now, "reason": values["reason"]}  # the rules may have moved
    elif _older(values["version"], held.version):
        return SetAside(int(held.id), news=False)  # read late: the entry holds a newer version already
    else:
        changes = {**values, "received_at": now, "last_seen_at": now, "dismissed_at": None, "dismissed_by": None}
    session.execute(update(QuarantineRow).where(QuarantineRow.id == held.id).values(**changes))
    return SetAside(int(held.id), news="raw" in changes)


def _identity(
    raw: str | bytes | Mapping[str, Any], resource_type: str | None, server_id: str | None
) -> tuple[str | None, str | None, str, str, str]:
    """Type, server id, entry key, version (``meta.versionId`` or ``sha256:`` of the text) and text."""
    version: str | None = None
    if isinstance(raw, Mapping):
        resource_type = resource_type or _str(raw.get("resourceType"))
        server_id = server_id or _str(raw.get("id"))
        meta = raw.get("meta")
        version = _str(meta.get("versionId")) if isinstance(meta, Mapping) else None
        text = _json_text(raw)
    else:
        text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    digest = "sha256:" + hashlib.sha256(text.encode("utf-8", errors="replace")).hexdigest()
    key = f"{resource_type or ''}/{server_id}" if server_id else f"{resource_type or ''}#{digest}"
    # As stored (a NUL cannot be), so that the version read again compares equal to the one held.
    return resource_type, server_id, key, without_nul(version or digest), text


def settle_quarantine(session: Session, source: str, resources: Iterable[Mapping[str, Any]]) -> int:
    """Drop the entries of these resources (read from ``source`` and found fine) that hold another
    version than the one read: the version set aside is no longer the server's. An entry of the
    very version read stays (what found it fine may check less than what set it aside). Returns how
    many entries went."""
    current: dict[str, str] = {}
    for resource in resources:
        if resource.get("id"):
            _, _, key, version, _ = _identity(resource, None, None)
            current[key] = version
    keys = sorted(current)
    stale: list[int] = []
    for start in range(0, len(keys), _CHUNK):
        query = select(QuarantineRow.id, QuarantineRow.entry_key, QuarantineRow.version).where(
            QuarantineRow.source == source, QuarantineRow.entry_key.in_(keys[start : start + _CHUNK])
        )
        stale += [row.id for row in session.execute(query) if row.version != current[row.entry_key]]
    if stale:
        session.execute(delete(QuarantineRow).where(QuarantineRow.id.in_(stale)))
    return len(stale)


def _older(version: str, than: str) -> bool:
    return version.isdigit() and than.isdigit() and int(version) < int(than)


def clear_quarantine(session: Session, source: str, resources: Iterable[tuple[str, str]]) -> int:
    """Drop the entries of these resources (type, server id) of ``source``: a copy of each was taken
    in, so what was set aside is no longer the server's. Returns how many entries went."""
    keys = sorted({f"{rtype}/{rid}" for rtype, rid in resources})
    gone = 0
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start : start + _CHUNK]
        stmt = delete(QuarantineRow).where(QuarantineRow.source == source, QuarantineRow.entry_key.in_(chunk))
        gone += len(session.execute(stmt.returning(QuarantineRow.id)).all())
    return gone


#: Keys per DELETE (bound parameters stay well under every driver's limit).
_CHUNK = 500


def _json_text(raw: Mapping[str, Any]) -> str:
    """``raw`` as JSON text; past orjson's nesting limit (254 levels) the standard library's writer
    keeps it, and past Python's, a note of what it was (it is refused for that very reason)."""
    try:
        return decimals.dumps(raw).decode()
    except TypeError:
        try:
            return json.dumps(raw)
        except (RecursionError, TypeError, ValueError):
            return json.dumps({"resourceType": _str(raw.get("resourceType")), "note": "nested too deep to keep"})


def _str(value: object) -> str | None:
    return value[:64] if isinstance(value, str) else None


def list_quarantine(
    session: Session,
    *,
    source: str | None = None,
    resource_type: str | None = None,
    limit: int | None = None,
    offset: int = 0,
    dismissed: bool = False,
) -> list[QuarantinedResource]:
    """Quarantined resources, newest first (by when their version was set aside), optionally from
    one source or of one type; ``offset`` pages on. The open entries, or with ``dismissed`` the
    dismissed ones."""
    q = QuarantineRow
    query = (
        select(*q.__table__.c)
        .where(q.dismissed_at.is_not(None) if dismissed else q.dismissed_at.is_(None))
        .order_by(q.received_at.desc(), q.id.desc())
        .limit(limit)
        .offset(offset or None)
    )
    if source is not None:  # as pulls write it: a server base without its trailing slash
        query = query.where(q.source == normal_base(source))
    if resource_type is not None:
        query = query.where(q.resource_type == resource_type)
    return [QuarantinedResource.model_validate(dict(row._mapping)) for row in session.execute(query)]


def count_quarantine(session: Session) -> int:
    """How many entries are open (not dismissed), counted by the database: entries hold whole resources."""
    query = select(func.count()).select_from(QuarantineRow).where(QuarantineRow.dismissed_at.is_(None))
    return int(session.execute(query).scalar_one())


def dismiss_quarantine(
    session: Session, entry_id: int, *, by: str, now: dt.datetime | None = None
) -> QuarantinedResource | None:
    """Dismiss an entry (see the module docstring); None if there is no such entry. Dismissing it
    again changes nothing (the first dismissal stands)."""
    q = QuarantineRow
    session.execute(
        update(q)
        .where(q.id == entry_id, q.dismissed_at.is_(None))
        .values(dismissed_at=now or utcnow(), dismissed_by=by[:64])
    )
    row = session.execute(select(*q.__table__.c).where(q.id == entry_id)).first()
    return None if row is None else QuarantinedResource.model_validate(dict(row._mapping))
