"""Who a Group screening ranks: the Group's members as the Group resource lists them on the day assessed.

The Group's ``member`` list, read after its export, is the scope — not the Patients the export
returned: an incremental export (``_since``) returns only the Patients that changed, and a member of
whom the server holds nothing new (or nothing at all) is still one of the panel, ranked from the facts
kept of them, or no candidate. A member entry counts when it is not ``inactive`` and its ``period``
holds the day assessed (an end dated that day still counts; one dated to a month or a year counts to
its last day, as a start counts from its first). Only Patients are ranked: a member that is a Group,
a Practitioner or a Patient of another server (an absolute reference at another base) is none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Mapping
from typing import Any

from ..mapping import local_reference, read_day

__all__ = ["group_members"]


def group_members(group: Mapping[str, Any], as_of: dt.date, bases: Collection[str] = ()) -> list[str]:
    """The ids of the Patients ``group`` lists as members on ``as_of``, each once, in the Group's order."""
    ids: list[str] = []
    members = group.get("member")
    for member in members if isinstance(members, list) else []:
        if not isinstance(member, Mapping) or member.get("inactive") is True or not _during(member, as_of):
            continue
        entity = member.get("entity")
        literal = entity.get("reference") if isinstance(entity, Mapping) else None
        ref = local_reference(literal, bases) if isinstance(literal, str) else None
        if ref is not None and ref[0] == "Patient" and ref[1] not in ids:
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
