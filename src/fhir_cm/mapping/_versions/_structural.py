"""Structural R4 ⇄ R5 changes that a rename table cannot say: elements that split, merge or change shape.

Each rule converts in both directions and may lose detail on the way (R5 lets a Condition have any
number of participants, R4 a recorder and an asserter); the walker notices that by converting back,
and carries the original in a cross-version extension. Each rule cites what HL7 itself did where the
specification leaves room.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._rules import Level, Rule, Values, as_list, props
from ._schema import referenced_type
from ._table import TABLE

if TYPE_CHECKING:
    from ._convert import Walker

__all__ = ["STRUCTURAL_RULES"]

_C = TABLE.constants


def _function(code: dict[str, str]) -> dict[str, Any]:
    return {"coding": [{"system": _C["participantTypeSystem"], "code": code["code"], "display": code["display"]}]}


def _has_code(concept: Any, system: str, codes: set[str]) -> bool:
    if not isinstance(concept, dict):
        return False
    return any(c.get("system") == system and c.get("code") in codes for c in concept.get("coding") or [])


def _backbone(level: Level, s_key: str, t_key: str) -> Level:
    """The level of a backbone element that has a different name in the two versions."""
    s_cls, t_cls = level.s_fields[s_key].cls, level.t_fields[t_key].cls
    assert s_cls is not None and t_cls is not None
    return Level(f"{level.s_path}.{s_key}", f"{level.t_path}.{t_key}", s_cls, t_cls)


class _Simple(Rule):
    """A rule over fixed elements: ``(parent path, keys)`` in R4 and in R5."""

    def __init__(self, r4: tuple[str, tuple[str, ...]], r5: tuple[str, tuple[str, ...]]) -> None:
        self.paths = {"R4": r4[0], "R5": r5[0]}
        self.keys = {"R4": r4[1], "R5": r5[1]}


class EncounterHospitalization(_Simple):
    """R4 ``hospitalization`` became R5 ``admission``, except diet, courtesy and special
    arrangements, which moved up to the Encounter itself."""

    _MOVED = ("dietPreference", "specialCourtesy", "specialArrangement")

    def __init__(self) -> None:
        super().__init__(("Encounter", ("hospitalization",)), ("Encounter", ("admission", *self._MOVED)))

    def to_r5(self, walker: Walker, level: Level, values: Values) -> Values:
        stay = values.get("hospitalization") or {}
        out: Values = {
            key: [walker.datatype(c, "CodeableConcept") for c in stay[key]] for key in self._MOVED if key in stay
        }
        rest = {k: v for k, v in stay.items() if k not in self._MOVED}
        if rest:
            out["admission"] = walker.element(rest, _backbone(level, "hospitalization", "admission"))
        return out

    def to_r4(self, walker: Walker, level: Level, values: Values) -> Values:
        stay: Values = {}
        if "admission" in values:
            stay = walker.element(values["admission"], _backbone(level, "admission", "hospitalization"))
        for key in self._MOVED:
            if key in values:
                stay[key] = [walker.datatype(c, "CodeableConcept") for c in values[key]]
        return {"hospitalization": stay} if stay else {}


class ConditionClinicalStatus(_Simple):
    """R5 requires ``clinicalStatus`` and added the code ``unknown`` for when nobody knows; R4
    leaves the element out instead. Absent in R4 ⇄ ``unknown`` in R5."""

    always = True

    def __init__(self) -> None:
        super().__init__(("Condition", ("clinicalStatus",)), ("Condition", ("clinicalStatus",)))

    def to_r5(self, walker: Walker, level: Level, values: Values) -> Values:
        status = values.get("clinicalStatus")
        if status is None:
            unknown = {"system": _C["conditionClinicalSystem"], "code": _C["conditionClinicalUnknownR5"]}
            return {"clinicalStatus": {"coding": [unknown]}}
        return {"clinicalStatus": walker.datatype(status, "CodeableConcept")}

    def to_r4(self, walker: Walker, level: Level, values: Values) -> Values:
        status = values.get("clinicalStatus")
        if status is None or _has_code(status, _C["conditionClinicalSystem"], {_C["conditionClinicalUnknownR5"]}):
            return {}
        return {"clinicalStatus": walker.datatype(status, "CodeableConcept")}


class ConditionParticipant(_Simple):
    """R4 ``recorder`` and ``asserter`` became R5 ``participant`` entries with a function
    (``enterer`` and ``author``, as in HL7's Condition4to5 map). Going back, an ``informant`` is
    taken as the asserter when there is no ``author`` (HL7's R5 examples use it for the R4 asserter)."""

    def __init__(self) -> None:
        super().__init__(("Condition", ("recorder", "asserter")), ("Condition", ("participant",)))

    def to_r5(self, walker: Walker, level: Level, values: Values) -> Values:
        participants = [
            {"function": _function(_C[function]), "actor": walker.datatype(values[key], "Reference")}
            for key, function in (("recorder", "conditionRecorderFunction"), ("asserter", "conditionAsserterFunction"))
            if key in values
        ]
        return props("participant", participants)

    def to_r4(self, walker: Walker, level: Level, values: Values) -> Values:
        system = _C["participantTypeSystem"]
        out: Values = {}
        for key, codes in (
            ("recorder", [{_C["conditionRecorderFunction"]["code"]}]),
            ("asserter", [{_C["conditionAsserterFunction"]["code"]}, set(_C["conditionAsserterAlsoFrom"])]),
        ):
            allowed = level.t_fields[key]
            participants = [
                p
                for p in as_list(values.get("participant"))
                if "actor" in p and allowed.may_point_to(referenced_type(p["actor"]))
            ]
            for wanted in codes:
                found = next((p for p in participants if _has_code(p.get("function"), system, wanted)), None)
                if found is not None:
                    out[key] = walker.datatype(found["actor"], "Reference")
                    break
        return out


class ConditionEvidence(_Simple):
    """R4 ``evidence`` (a backbone with code and detail lists) became a CodeableReference list."""

    def __init__(self) -> None:
        super().__init__(("Condition", ("evidence",)), ("Condition", ("evidence",)))

    def to_r5(self, walker: Walker, level: Level, values: Values) -> Values:
        refs: list[Any] = []
        for evidence in as_list(values.get("evidence")):
            concepts = [walker.datatype(c, "CodeableConcept") for c in evidence.get("code") or []]
            details = [walker.datatype(r, "Reference") for r in evidence.get("detail") or []]
            if len(concepts) == 1 and len(details) == 1:  # one finding and its source: one entry (as HL7 did)
                refs.append({"concept": concepts[0], "reference": details[0]})
            else:
                refs += [{"concept": c} for c in concepts] + [{"reference": r} for r in details]
        return props("evidence", refs)

    def to_r4(self, walker: Walker, level: Level, values: Values) -> Values:
        items = []
        for ref in as_list(values.get("evidence")):
            item: Values = {}
            if "concept" in ref:
                item["code"] = [walker.datatype(ref["concept"], "CodeableConcept")]
            if "reference" in ref:
                item["detail"] = [walker.datatype(ref["reference"], "Reference")]
            if item:
                items.append(item)
        return props("evidence", items)


class ServiceRequestPatientInstruction(_Simple):
    """R4 ``patientInstruction`` (a string) became a list of ``instruction[x]`` (markdown or a
    DocumentReference), as in HL7's ServiceRequest4to5 map."""

    def __init__(self) -> None:
        super().__init__(("ServiceRequest", ("patientInstruction",)), ("ServiceRequest", ("patientInstruction",)))

    def to_r5(self, walker: Walker, level: Level, values: Values) -> Values:
        item = props("instructionMarkdown", values.get("patientInstruction"), values.get("_patientInstruction"))
        return {"patientInstruction": [item]} if item else {}

    def to_r4(self, walker: Walker, level: Level, values: Values) -> Values:
        first: Values = next(iter(as_list(values.get("patientInstruction"))), {})
        return props("patientInstruction", first.get("instructionMarkdown"), first.get("_instructionMarkdown"))


class CommunicationPayloadString(_Simple):
    """R5 dropped ``payload.contentString`` and added ``contentCodeableConcept``; a string is a
    concept's text."""

    def __init__(self) -> None:
        super().__init__(
            ("Communication.payload", ("contentString",)), ("Communication.payload", ("contentCodeableConcept",))
        )

    def to_r5(self, walker: Walker, level: Level, values: Values) -> Values:
        concept = props("text", values.get("contentString"), values.get("_contentString"))
        return {"contentCodeableConcept": concept} if concept else {}

    def to_r4(self, walker: Walker, level: Level, values: Values) -> Values:
        concept = values.get("contentCodeableConcept") or {}
        codings = concept.get("coding") or [{}]
        text = concept.get("text") or codings[0].get("display") or codings[0].get("code")
        return props("contentString", text, concept.get("_text"))


STRUCTURAL_RULES: tuple[Rule, ...] = (
    EncounterHospitalization(),
    ConditionClinicalStatus(),
    ConditionParticipant(),
    ConditionEvidence(),
    ServiceRequestPatientInstruction(),
    CommunicationPayloadString(),
)
