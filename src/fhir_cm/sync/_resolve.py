"""Applying a person's decision on a conflict: keep the local value, or the server's.

A conflict recorded by the pull (``_conflicts``) names the clashing fields of one resource in the
domain's words, with both sides' values; the merged case already holds the server's. So:

* ``keep="server"`` changes nothing in the case: the server's value stands;
* ``keep="local"`` puts the recorded local values back into the case and saves it — which queues
  it, and the pusher sends the change as an ``If-Match`` update over the server copy the pull
  recorded (a server that moved on again gives a new conflict, never a silent overwrite).

Either way the case is queued again (a push that failed on the conflict left its row failed) and
the conflict is marked resolved, in one transaction. A conflict the *pusher* recorded (a 412 whose
three-way merge clashed) holds whole FHIR resources, not domain fields: the next pull reads the
server copy and records the same conflict field by field, in place of the pusher's; it can be
resolved then. But for one no pull can see: a resource the server deleted while the case changed it
(``(removed on the server)``, no server side) — ``local`` writes it again, ``server`` removes the
entity from the case.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any, Literal

from pydantic import ValidationError
from sqlalchemy.orm import Session

from ..domain import Case
from ..store import (
    CaseRecord,
    ConflictRecord,
    NotFound,
    Resolution,
    forget_ledger,
    Store,
    queue_push,
    get_case_record,
    list_conflicts,
    resolve_conflict,
    save_case,
)
from ._conflicts import _ENTITY_TYPES, REMOVED_LOCALLY, REMOVED_ON_SERVER, WHOLE_CASE
from ..errors import FhirCmError

__all__ = ["ConflictNotResolvable", "Keep", "resolve"]

#: A person's choice on a conflict: keep the local value, or the server's.
Keep = Literal["local", "server"]
_ENTITY_LISTS = {rtype: name for name, rtype in _ENTITY_TYPES.items()}
_TEAM_FIELD = re.compile(r"^team\[(?P<member>[^\]]+)\]\.(?P<field>.+)$")


class ConflictNotResolvable(FhirCmError):
    """The conflict cannot be applied as asked (its case or entity is gone, or a push recorded it)."""


def _apply_entity(items: list[dict[str, Any]], entity_id: str, fields: list[str], local: dict[str, Any]) -> None:
    """Put the local side of one entity's clashing fields back into ``items`` (in place)."""
    at = next((i for i, e in enumerate(items) if e.get("id") == entity_id), None)
    for name in fields:
        if name == REMOVED_ON_SERVER:  # edited here, removed there: bring the local entity back
            entity = local if local.get("id") == entity_id else {**local, "id": entity_id}
            if at is None:
                items.append(entity)
                at = len(items) - 1
            else:
                items[at] = entity
        elif name == REMOVED_LOCALLY:  # removed here, edited there: remove it again
            if at is not None:
                del items[at]
                at = None
        elif at is None:
            raise ConflictNotResolvable(f"the case no longer has the {entity_id} the conflict is about")
        else:
            items[at] = {**items[at], name: local.get(name)}


def _with_local(case: Case, conflict: ConflictRecord) -> Case:
    """The case with the conflict's local values put back."""
    local = conflict.local or {}
    if WHOLE_CASE in conflict.fields:
        return Case.model_validate(local)
    data = case.model_dump(mode="json")
    if conflict.resource_type == "CareTeam":
        for name in conflict.fields:
            parsed = _TEAM_FIELD.match(name)
            if parsed is None:
                raise ConflictNotResolvable(f"unexpected field {name!r} in a CareTeam conflict")
            field, value = parsed["field"], local.get(name)
            if field == REMOVED_ON_SERVER:
                _apply_entity(data["team"], parsed["member"], [field], value or {})
            else:
                _apply_entity(data["team"], parsed["member"], [field], {field: value})
    elif conflict.resource_type in _ENTITY_LISTS:
        _apply_entity(data[_ENTITY_LISTS[conflict.resource_type]], conflict.resource_key, conflict.fields, local)
    else:  # EpisodeOfCare and CarePlan: fields of the case itself
        data.update({name: local.get(name) for name in conflict.fields})
    try:
        return Case.model_validate(data)
    except ValidationError as exc:
        raise ConflictNotResolvable(
            f"the local values no longer fit the case ({exc.error_count()} problems); edit the case instead"
        ) from None


def _deleted_on_server(conflict: ConflictRecord) -> bool:
    """A push's conflict on a resource the server no longer held while the case had changed it."""
    return conflict.server is None and conflict.fields == [REMOVED_ON_SERVER]


def _write_again_or_let_go(session: Session, record: CaseRecord, conflict: ConflictRecord, keep: Keep) -> None:
    """``local``: the resource is written again — what the servers were known to hold of it is
    forgotten, so the next push creates it rather than update the deleted copy. ``server``: the
    entity goes from the case as it went from the server (a case cannot be without its episode,
    plan, team or a referral's Task: those can only be written again); its ledger entry stays, so the
    next push still knows the reference to it as the case's own and takes it out of the CarePlan (a
    reference it no longer knew was kept there as another system's, naming a goal that is gone)."""
    if keep == "server":
        entities = _ENTITY_LISTS.get(conflict.resource_type)
        if entities is None:
            raise ConflictNotResolvable(
                f"the case cannot be without its {conflict.resource_type}: resolve with 'local' to write it again"
            )
        data = record.case.model_dump(mode="json")
        _apply_entity(data[entities], conflict.resource_key, [REMOVED_LOCALLY], {})
        try:
            case = Case.model_validate(data)
        except ValidationError as exc:
            raise ConflictNotResolvable(
                f"the case does not hold together without {conflict.resource_key} ({exc.error_count()} problems); "
                "edit the case instead"
            ) from None
        save_case(session, case, enqueue=False, expected_revision=record.revision)
        return
    forget_ledger(session, conflict.case_id, conflict.resource_type, conflict.resource_key)


def resolve(
    store: Store,
    conflict_id: int,
    keep: Keep,
    *,
    resolved_by: str | None = None,
    visible: Callable[[Case], bool] | None = None,
    then: Callable[[Session, ConflictRecord], None] | None = None,
) -> ConflictRecord:
    """Settle an open conflict: keep the ``"local"`` value (pushed next) or the ``"server"``'s.

    ``visible(case)`` says whether the caller may see the conflict's case (an API principal): one it
    may not see is not found, so existence does not leak. ``then(session, resolved)`` runs in the
    same transaction (an audit record, say).

    Raises ``NotFound`` when there is no open conflict with that id (or none the caller may see), and
    :class:`ConflictNotResolvable` when it cannot be applied (see the module docstring).
    """
    if keep not in ("local", "server"):
        raise ValueError(f"keep must be 'local' or 'server' (got {keep!r})")
    with store.session() as session:
        conflict = next((c for c in list_conflicts(session) if c.id == conflict_id), None)
        if conflict is None:
            raise NotFound(f"no open conflict {conflict_id}")
        if visible is not None:
            seen = get_case_record(session, conflict.case_id)
            if seen is None or not visible(seen.case):
                raise NotFound(f"no open conflict {conflict_id}")
        deleted = _deleted_on_server(conflict)
        if not deleted and isinstance(conflict.local, dict) and "resourceType" in conflict.local:
            raise ConflictNotResolvable(
                f"conflict {conflict_id} was found by a push; pull first, which records it field by field"
            )
        record = get_case_record(session, conflict.case_id)
        if record is None:
            raise ConflictNotResolvable(f"the case of conflict {conflict_id} is no longer in the store")
        if deleted:
            _write_again_or_let_go(session, record, conflict, keep)
        elif keep == "local":
            save_case(session, _with_local(record.case, conflict), enqueue=False, expected_revision=record.revision)
        queue_push(session, conflict.case_id)
        resolved = resolve_conflict(
            session, conflict_id, Resolution.LOCAL if keep == "local" else Resolution.SERVER, resolved_by=resolved_by
        )
        if then is not None:
            then(session, resolved)
        return resolved
