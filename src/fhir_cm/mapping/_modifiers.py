"""Modifiers: what turns a resource's meaning around, so that a reader that does not know it must not read it.

FHIR lets any resource carry a ``modifierExtension`` (a Condition the sender negated, a Goal it
marked as someone else's), ServiceRequest has ``doNotPerform``: "do *not* do this", and a Condition's
``verificationStatus`` may say it was ruled out (``refuted``) or never so (``entered-in-error``), a
Communication's ``status`` (a modifier element) that it never took place (``not-done``: the call
not made), has not yet (``preparation``: a letter drafted, a call booked, not sent) or was recorded in
error (``entered-in-error``) — read, it would be a contact done, counted in the contact gap and the
follow-up after discharge; read again once it is ``completed`` — and a
ServiceRequest's that it was never made (``entered-in-error``: read without a Task, a referral
``requested``; fhir-cm never writes it). The
specification (Extensibility, modifier extensions) asks an application that meets a modifier it does
not understand to refuse to process the resource rather than read it as if the modifier were not
there. The mapping understands none, and reading such a resource would say the opposite of what it
says: a negated concern as a need, a "do not refer" as a referral. So the mapping refuses it
(:class:`UnreadableResourceError`): an import keeps it raw-only and exports it as it came, a pull
leaves it out of the case.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from .. import decimals

__all__ = ["modifier_problems"]

#: Condition.verificationStatus (a modifier element, required binding): the condition is not so.
_VERIFICATION = "http://terminology.hl7.org/CodeSystem/condition-ver-status"
_NOT_SO = frozenset({"refuted", "entered-in-error"})
#: A ``status`` (a modifier element) saying there is nothing to read: no contact took place, no request was made.
_NOT_DONE = {
    "Communication": frozenset({"not-done", "preparation", "entered-in-error"}),
    "ServiceRequest": frozenset({"entered-in-error"}),
}


def _paths(obj: Any, path: str) -> Iterator[str]:
    """Where ``obj`` carries a modifier extension (contained resources are read on their own, if at all)."""
    if isinstance(obj, Mapping):
        if obj.get("modifierExtension"):
            yield f"{path}.modifierExtension"
        for key, value in obj.items():
            if key != "contained" and isinstance(value, Mapping | list):
                yield from _paths(value, f"{path}.{key}")
    elif isinstance(obj, list):
        for item in obj:
            yield from _paths(item, path)


def _may_carry_modifier_extension(resource: Mapping[str, Any]) -> bool:
    """Whether the word is anywhere in ``resource``'s JSON: almost no resource carries a modifier
    extension, and writing it out and searching the text costs a tenth of walking every element in
    Python (which a pull does twice for each resource it takes in). Where the word is there (in a
    contained resource, in a string), the walk decides."""
    try:
        return b'"modifierExtension"' in decimals.dumps(resource)
    except TypeError:  # not JSON (nested past what orjson writes): the walk decides
        return True


def modifier_problems(resource: Mapping[str, Any]) -> list[str]:
    """What in ``resource`` changes its meaning in a way the mapping does not understand (element paths, no values)."""
    rtype = str(resource.get("resourceType"))
    problems = (
        [f"{where} (a modifier extension fhir-cm does not understand)" for where in _paths(resource, rtype)]
        if _may_carry_modifier_extension(resource)
        else []
    )
    if resource.get("doNotPerform") is True:
        problems.append(f"{rtype}.doNotPerform (a request not to do it)")
    if rtype == "Condition" and _not_so(resource.get("verificationStatus")):
        problems.append("Condition.verificationStatus (refuted or entered in error: no condition to read)")
    if resource.get("status") in _NOT_DONE.get(rtype, ()):
        problems.append(f"{rtype}.status ({resource['status']}: it has not taken place)")
    return problems


def _not_so(concept: Any) -> bool:
    codings = concept.get("coding") if isinstance(concept, Mapping) else None
    return isinstance(codings, list) and any(
        isinstance(c, Mapping) and c.get("system") == _VERIFICATION and c.get("code") in _NOT_SO for c in codings
    )
