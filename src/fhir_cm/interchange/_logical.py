"""References by identifier only (``{"identifier": {"system": …, "value": …}}``), read as the entry they name.

FHIR lets a Reference name its target by a business identifier alone (a *logical* reference), and
EHRs that hand out no ids a receiver knows export them so: a Goal's ``subject`` by the patient's
MRN, an Encounter's ``episodeOfCare`` by the episode number. Left so, such a resource names no
patient and no episode: it lands in the file's case of unidentified resources, away from its case.
When exactly one resource holding that identifier answers it — an entry of the same file (of the
Reference's ``type``, if it says one), else a patient already in the store — the Reference gets
that resource's ``Type/id`` as its ``reference``, beside the identifier and display it came with
(nothing of what the sender wrote goes). An identifier without a system names nothing certain and
is left alone, as is one that two resources hold.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

__all__ = ["Answers", "Known", "name_logical_references"]

#: ``(system, value)`` → the ``Type/id`` of each entry of the file holding that identifier.
Answers = Mapping[tuple[str, str], list[str]]
#: Looks up what the file does not answer: ``(type or None, system, value)`` → ``Type/id`` or None.
Known = Callable[[str | None, str, str], str | None]

#: What a Reference holds; an object holding anything else is not one (a backbone element with an identifier).
_REFERENCE_KEYS = frozenset({"id", "extension", "identifier", "type", "display"})


def _logical(obj: Mapping[str, Any]) -> tuple[str | None, str, str] | None:
    """``(type, system, value)`` of a Reference naming its target by identifier only, else None."""
    identifier = obj.get("identifier")
    if "reference" in obj or type(identifier) is not dict or not obj.keys() <= _REFERENCE_KEYS:
        return None
    system, value, rtype = identifier.get("system"), identifier.get("value"), obj.get("type")
    if not (isinstance(system, str) and system and isinstance(value, str) and value):
        return None
    # ``type`` is a URI: "Patient", or the absolute "http://hl7.org/fhir/StructureDefinition/Patient".
    return (rtype.rsplit("/", 1)[-1] if isinstance(rtype, str) and rtype else None), system, value


def _target(answers: Answers, known: Known | None, rtype: str | None, system: str, value: str) -> str | None:
    found = {t for t in answers.get((system, value), ()) if rtype is None or t.split("/", 1)[0] == rtype}
    if len(found) == 1:
        return found.pop()
    return known(rtype, system, value) if not found and known is not None else None


def name_logical_references(obj: Any, answers: Answers, known: Known | None = None) -> Any:
    """``obj`` with each logical Reference it answers given its ``reference``; ``obj`` itself when none is
    (a changed object is a copy: the parsed resource is shared with nothing else, but kept as read)."""
    if type(obj) is list:
        items = [name_logical_references(v, answers, known) for v in obj]
        return obj if all(a is b for a, b in zip(items, obj, strict=True)) else items
    if type(obj) is not dict:
        return obj
    out: dict[str, Any] | None = None
    asked = _logical(obj)
    if asked is not None and (literal := _target(answers, known, *asked)) is not None:
        out = {"reference": literal, **obj}
    for key, value in obj.items():
        if type(value) is dict or type(value) is list:
            changed = name_logical_references(value, answers, known)
            if changed is not value:
                out = dict(obj) if out is None else out
                out[key] = changed
    return obj if out is None else out
