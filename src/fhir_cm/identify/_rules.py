"""Eligibility rules as data (``mappings/eligibility-rules.json``).

A hospital's case-management programme decides who it wants to see — how many admissions, which
conditions, which screens — and changes its mind; the rules are therefore a file a programme lead
can edit, and this module only reads it and applies it. Each rule names the eligibility reason it
gives (the ``EligibilityReason`` a case carries) and the weight it adds to the score (``_assess``).

An ``age`` rule reads the Patient's ``birthDate``: age alone makes a large share of any hospital's
patients eligible, while programmes look for *older adults losing independence* or *children with
complex conditions*; so such a rule may name, in ``with_any``, the other rules of which one must be
met too for its age to count.
"""

from __future__ import annotations

import functools
import json
import string
from collections.abc import Collection
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from ..domain import EligibilityReason
from ..errors import FhirCmError
from ..terminology import mappings_dir

__all__ = ["EligibilityRules", "Rule", "RulesError", "ScreenRules", "load_rules"]

RULES_FILE = "eligibility-rules.json"
#: ICD-10 systems named by their OIDs (ICD-10-CM, ICD-10), as some EHRs' codings name them: their
#: entries are prefixes too, as under the ``http://hl7.org/fhir/sid/icd-10[-cm]`` URLs.
_ICD10_OIDS = frozenset({"urn:oid:2.16.840.1.113883.6.90", "urn:oid:2.16.840.1.113883.6.3"})
#: The names a rule's ``says`` may use, by kind (``_assess`` fills them in).
_SAYS_NAMES = {"age": frozenset({"age", "also"})}
_COUNTED = frozenset({"n", "window_days", "within_days", "codes"})


class RulesError(FhirCmError):
    """The eligibility rules file cannot be read or breaks its own schema (the message says where)."""


class Rule(BaseModel):
    """One criterion: what it counts, the threshold, the reason it gives and its weight."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    reason: EligibilityReason
    kind: Literal["encounter-count", "readmission", "condition-count", "condition-any", "positive-screen", "age"]
    weight: int = Field(ge=0)
    says: str
    encounter: Literal["inpatient", "emergency"] | None = None
    at_least: int = Field(default=1, ge=1)
    within_days: int = Field(default=30, ge=1)
    value_set: str | None = None
    age_at_least: int | None = Field(default=None, ge=0, le=150, description="Age rule: this many years or more.")
    age_under: int | None = Field(default=None, ge=1, le=150, description="Age rule: younger than this.")
    with_any: tuple[str, ...] = Field(
        default=(), description="Age rule: the ids of other rules, one of which must be met for the age to count."
    )

    @model_validator(mode="after")
    def _what_it_counts(self) -> Self:
        """A count of encounters needs their kind, a condition rule its value set: left out, the one
        counted no one (silently), the other stopped the screening at its first patient."""
        if self.kind == "encounter-count" and self.encounter is None:
            raise ValueError("an encounter-count rule needs an encounter (inpatient or emergency)")
        if self.kind in ("condition-count", "condition-any") and self.value_set is None:
            raise ValueError(f"a {self.kind} rule needs a value_set")
        return self

    @model_validator(mode="after")
    def _age_bounds(self) -> Self:
        """An age rule needs a bound, and bounds that leave someone in; other rules read no age."""
        if self.kind != "age":
            if self.age_at_least is not None or self.age_under is not None or self.with_any:
                raise ValueError("age_at_least, age_under and with_any belong to an age rule")
        elif self.age_at_least is None and self.age_under is None:
            raise ValueError("an age rule needs age_at_least or age_under")
        elif self.age_at_least is not None and self.age_under is not None and self.age_at_least >= self.age_under:
            raise ValueError("age_at_least must be below age_under: no age meets the rule")
        return self

    @model_validator(mode="after")
    def _says_names(self) -> Self:
        """The sentence is filled in for each patient meeting the rule: a name it has not (a typo) or a
        stray brace is refused with the file, not found by the first such patient mid-screening."""
        allowed = _SAYS_NAMES.get(self.kind, _COUNTED)
        try:
            names = [name for _, name, _, _ in string.Formatter().parse(self.says) if name is not None]
        except ValueError as exc:
            raise ValueError(f"says is not a sentence with {{names}}: {exc}") from None
        for name in names:
            if name not in allowed:
                raise ValueError(f"says uses an unknown name {name!r} (this kind has {', '.join(sorted(allowed))})")
        return self


class ScreenRules(BaseModel):
    """Which Observations are social-needs screens, and which answers make one positive.

    ``questions``: for a panel, its questions and, for each, the answers that say the patient has a
    need (an empty list: none does — "Yes" to "Hispanic or Latino?" is no need). An answer is judged
    by its question (the Observation's code, or a component's), wherever it stands: a member of a
    panel, a component, or recorded with no panel. An answer to a question no panel lists is judged
    by ``positive_answers``, those that say a need whatever the question. An answer recorded with no
    panel, in one of ``answer_categories``, to a listed question, answered with a need, counts as a
    screen of the first panel (in the file's order) whose question it so answers."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    panels: dict[str, str]
    questions: dict[str, dict[str, frozenset[str]]] = Field(default_factory=dict)
    positive_interpretations: frozenset[str]
    positive_answers: frozenset[str]
    answer_categories: frozenset[str] = frozenset()

    @field_validator("panels", "positive_answers", "answer_categories")
    @classmethod
    def _system_and_code(cls, value: Any) -> Any:
        """Each panel and answer is ``system|code``, as codings are read: a bare ``96777-8`` exported the
        panel's screens (a search by code takes any system) and then matched none of them, silently."""
        bare = [c for c in value if not _coded(c)]
        if bare:
            raise ValueError(f"write each as system|code (http://loinc.org|96777-8), not {sorted(bare)}")
        return value

    @field_validator("questions")
    @classmethod
    def _questions_coded(cls, value: dict[str, dict[str, frozenset[str]]]) -> dict[str, dict[str, frozenset[str]]]:
        bare = sorted({c for qs in value.values() for q, answers in qs.items() for c in (q, *answers) if not _coded(c)})
        if bare:
            raise ValueError(f"write each question and answer as system|code (http://loinc.org|71802-3), not {bare}")
        return value

    @model_validator(mode="after")
    def _questions_of_panels(self) -> Self:
        """Questions belong to a panel of ``panels``: listed under another code, they were never asked."""
        unknown = sorted(set(self.questions) - set(self.panels))
        if unknown:
            raise ValueError(f"questions are listed for what is no panel of panels: {unknown}")
        return self

    @property
    def codes(self) -> list[str]:
        """The codes screening reads Observations of: the panels, then each question some answer of
        which says a need (each once) — a question's answer changed alone is read with them."""
        asked = [q for listed in self.questions.values() for q, answers in listed.items() if answers]
        return list(dict.fromkeys([*self.panels, *asked]))

    def says_need(self, question: Collection[str], answers: Collection[str]) -> bool:
        """Whether ``answers`` (``system|code``) to the question coded ``question`` say a need: by the
        question's answers where a panel lists it (under any panel), else by ``positive_answers``."""
        listed = False
        for questions in self.questions.values():
            for code in question:
                if code in questions:
                    listed = True
                    if any(a in questions[code] for a in answers):
                        return True
        return not listed and any(a in self.positive_answers for a in answers)

    def panel_answered(self, question: Collection[str], answers: Collection[str]) -> str | None:
        """The first panel whose question ``question`` these answers answer with a need, if any."""
        for panel, listed in self.questions.items():
            if any(a in listed.get(q, ()) for q in question for a in answers):
                return panel
        return None


def _coded(code: str) -> bool:
    return all(code.partition("|")[::2]) and code.count("|") == 1


class EligibilityRules(BaseModel):
    """The whole rules file."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    description: str = ""
    version: str
    window_days: int = Field(ge=1)
    minimum_score: int = Field(ge=1)
    encounter_classes: dict[Literal["inpatient", "emergency"], frozenset[str]]
    ignored_encounter_statuses: frozenset[str]
    ignored_condition_statuses: frozenset[str]
    ignored_verification_statuses: frozenset[str]
    ignored_screen_statuses: frozenset[str]
    rules: tuple[Rule, ...]
    screens: ScreenRules
    value_sets: dict[str, dict[str, tuple[str, ...]]]

    @model_validator(mode="after")
    def _with_any_names_rules(self) -> Self:
        """``with_any`` names rules of the file that are no age rules (an age met with another age is
        still age alone); a rule id named twice would make which one is met ambiguous."""
        ids = [r.id for r in self.rules]
        if len(set(ids)) != len(ids):
            raise ValueError(f"rule ids must be unique: {sorted({i for i in ids if ids.count(i) > 1})}")
        plain = {r.id for r in self.rules if r.kind != "age"}
        for rule in self.rules:
            unknown = [i for i in rule.with_any if i not in plain]
            if unknown:
                raise ValueError(f"rule {rule.id} names in with_any what is no other non-age rule: {unknown}")
        return self

    def in_value_set(self, name: str, coding: str) -> bool:
        """Whether ``system|code`` is in a value set (see :meth:`value_set_entry`)."""
        return self.value_set_entry(name, coding) is not None

    def value_set_entry(self, name: str, coding: str) -> str | None:
        """The entry of a value set ``system|code`` matches (``system|entry``), if any: ICD-10 entries
        (a system named by an ``icd-10`` URL or by its OID) are prefixes (``I50`` is every heart
        failure; dots ignored), other systems' entries are exact
        codes. Two codings matching one entry are one condition, however specific each is."""
        system, _, code = coding.partition("|")
        entries = self.value_sets.get(name, {}).get(system)
        if not entries:
            return None
        if "icd-10" in system or system in _ICD10_OIDS:
            bare = code.replace(".", "").upper()
            found = next((e for e in entries if bare.startswith(e.replace(".", "").upper())), None)
        else:
            found = code if code in entries else None
        return f"{system}|{found}" if found is not None else None

    def encounter_kind(self, class_code: str) -> Literal["inpatient", "emergency"] | None:
        for kind, codes in self.encounter_classes.items():
            if class_code in codes:
                return kind
        return None


@functools.cache
def load_rules() -> EligibilityRules:
    """The rules of ``mappings/eligibility-rules.json`` (read once per process)."""
    path = mappings_dir() / RULES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        rules = EligibilityRules.model_validate(data)
    except (OSError, ValueError) as exc:
        where = ""
        if isinstance(exc, ValidationError):
            first = exc.errors()[0]
            where = f": {'.'.join(str(p) for p in first['loc'])}: {first['msg']}"
        raise RulesError(f"{RULES_FILE} cannot be used{where or ': ' + type(exc).__name__}") from None
    for rule in rules.rules:
        if rule.value_set is not None and rule.value_set not in rules.value_sets:
            raise RulesError(f"{RULES_FILE}: rule {rule.id} names an unknown value set {rule.value_set!r}")
    return rules
