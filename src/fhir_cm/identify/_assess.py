"""One patient against the eligibility rules: eligible or not, a score, and the reasons with evidence.

A patient whose score (the weights of the rules met) reaches ``minimum_score`` is a candidate unless
excluded — deceased, a record merged into another, or already in an open case — and the reasons say
why, with the dates and codes that met each rule, so a supervisor can check a candidate before
enrolling them.
"""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, Field

from ..domain import EligibilityReason
from ._facts import PatientFacts
from ._rules import EligibilityRules, Rule

__all__ = ["Assessment", "Reason", "assess"]


class Reason(BaseModel):
    """Why a patient is a candidate: the rule, the eligibility reason it gives, in words, and the evidence."""

    rule: str
    reason: EligibilityReason
    text: str
    weight: int
    evidence: list[str] = Field(default_factory=list, description="Codes or dates that met the rule.")


class Assessment(BaseModel):
    """One patient against the rules: eligible or not, the score and the reasons."""

    patient_id: str
    eligible: bool
    score: int
    reasons: list[Reason] = Field(default_factory=list)
    excluded: str | None = Field(default=None, description="Why a patient who meets rules is not a candidate.")

    @property
    def eligibility(self) -> list[EligibilityReason]:
        """The case's eligibility reasons, each once, in the order the rules gave them."""
        return list(dict.fromkeys(r.reason for r in self.reasons))


def assess(facts: PatientFacts, rules: EligibilityRules, as_of: dt.date) -> Assessment:
    """Apply every rule to one patient's facts as they stood on ``as_of`` (the window ends there)."""
    since = as_of - dt.timedelta(days=rules.window_days)
    met: dict[str, Reason] = {}
    for rule in rules.rules:  # the age rules last: they may need another rule met
        if rule.kind != "age" and (reason := _apply(rule, facts, rules, since, as_of)) is not None:
            met[rule.id] = reason
    for rule in rules.rules:
        if rule.kind == "age" and (reason := _age(rule, facts, met, as_of)) is not None:
            met[rule.id] = reason
    reasons = [met[rule.id] for rule in rules.rules if rule.id in met]  # in the file's order
    score = sum(r.weight for r in reasons)
    excluded = None
    if facts.deceased:
        excluded = "deceased"
    elif facts.replaced_by is not None:
        excluded = f"merged into {facts.replaced_by}"
    elif facts.open_case:
        excluded = "already in an open case"
    eligible = score >= rules.minimum_score and excluded is None
    return Assessment(patient_id=facts.patient_id, eligible=eligible, score=score, reasons=reasons, excluded=excluded)


def _apply(rule: Rule, facts: PatientFacts, rules: EligibilityRules, since: dt.date, as_of: dt.date) -> Reason | None:
    evidence: list[str] = []
    n = 0
    if rule.kind == "encounter-count":
        visits = facts.visits(rule.encounter) if rule.encounter is not None else []
        spans = sorted(e.began for e in visits if _within(e.began, since, as_of))
        n, evidence = len(spans), [_said(span) for span in spans]
        met = n >= rule.at_least
    elif rule.kind == "readmission":
        evidence = _readmissions(facts, rule.within_days, since, as_of)
        n, met = len(evidence), bool(evidence)
    elif rule.kind in ("condition-count", "condition-any"):
        value_set = rule.value_set
        assert value_set is not None
        known = [cond for cond in facts.conditions if cond.on is None or cond.on <= as_of]  # not yet, on as_of
        evidence = sorted({c for cond in known for c in cond.codes if rules.in_value_set(value_set, c)})
        entries = [{e for c in cond.codes if (e := rules.value_set_entry(value_set, c))} for cond in known]
        n = _distinct([keys for keys in entries if keys])
        met = n >= rule.at_least
    else:  # positive-screen
        screens = [
            s for s in facts.screened() if facts.positive(s) and _within((s.on, s.on_last or s.on), since, as_of)
        ]
        n, evidence = len(screens), sorted({rules.screens.panels.get(s.panel, s.panel) for s in screens})
        met = n >= 1
    if not met:
        return None
    text = rule.says.format(n=n, window_days=rules.window_days, within_days=rule.within_days, codes=", ".join(evidence))
    return Reason(rule=rule.id, reason=rule.reason, text=text, weight=rule.weight, evidence=evidence)


#: The age from which an age is said as "90 or older": ages over 89 identify a person on their own
#: (HIPAA's safe harbour), and a reason's text travels into the referral and the EHR's card.
_OLDEST_SAID = 90


def _age(rule: Rule, facts: PatientFacts, met: dict[str, Reason], as_of: dt.date) -> Reason | None:
    """An age rule on ``as_of``: met only where every day the birth date allows meets it — a birth
    year or month straddling the threshold's birthday is not taken as the age that would qualify — and,
    with ``with_any``, where one of those rules is met too. The evidence is the age, never the birth date."""
    age = facts.age(as_of)
    if age is None:
        return None
    youngest, oldest = age
    if rule.age_at_least is not None and youngest < rule.age_at_least:
        return None
    if rule.age_under is not None and oldest >= rule.age_under:
        return None
    also = [i for i in rule.with_any if i in met]
    if rule.with_any and not also:
        return None
    if youngest >= _OLDEST_SAID:
        said = f"{_OLDEST_SAID} or older"
    elif oldest >= _OLDEST_SAID:
        said = f"{youngest} or older"
    else:
        said = str(youngest) if youngest == oldest else f"{youngest} or {oldest}"
    text = rule.says.format(age=said, also=", ".join(met[i].text for i in also))
    return Reason(rule=rule.id, reason=rule.reason, text=text, weight=rule.weight, evidence=[f"aged {said}"])


def _within(span: tuple[dt.date, dt.date], since: dt.date, as_of: dt.date) -> bool:
    """Whether every day a date allows (one day, or a month or a year: ``_facts``) is in the window."""
    return since <= span[0] and span[1] <= as_of


def _said(span: tuple[dt.date, dt.date]) -> str:
    """A date as evidence, with the precision it was written with (``2026-05-14``, ``2026-05``, ``2026``)."""
    first, last = span
    if first == last:
        return first.isoformat()
    return first.strftime("%Y-%m") if (first.year, first.month) == (last.year, last.month) else str(first.year)


def _distinct(conditions: list[set[str]]) -> int:
    """How many conditions these are (each given by the value-set entries its codings match): one
    condition counts once however many codings it carries, and one recorded again — a diagnosis of
    each visit, more or less specific (``E11.9``, ``E11.65``), or coded in the other system alongside —
    shares an entry with the first and is the same condition."""
    groups: list[set[str]] = []
    for keys in conditions:
        joined = [g for g in groups if g & keys]
        groups = [g for g in groups if not g & keys] + [keys.union(*joined)]
    return len(groups)


def _readmissions(facts: PatientFacts, within_days: int, since: dt.date, as_of: dt.date) -> list[str]:
    """Admissions inside the window that began within ``within_days`` of an earlier inpatient discharge:
    the latest before them, not that of the stay admitted just before (a shorter stay inside a long
    one, not recorded as part of it, ends before the long one does)."""
    stays = sorted(facts.visits("inpatient"), key=lambda e: e.start)
    found: list[str] = []
    discharged: dt.date | None = None
    for stay in stays:
        first, last = stay.began  # a month or a year: a readmission only if every day it allows is one
        if (
            discharged is not None
            and _within(stay.began, since, as_of)
            and 0 <= (first - discharged).days
            and (last - discharged).days <= within_days
        ):
            found.append(_said(stay.began))
        ended = stay.end or stay.start
        discharged = ended if discharged is None else max(discharged, ended)
    return found
