"""``fhir-cm check``: the cases in the store that break a rule of what can be true, and what is quarantined.

New data is held to the domain's rules where it comes in (the API refuses it, a pull quarantines
it), but data stored before a rule existed, or imported from files as it was, may break one. It is
kept — never silently dropped or changed — and listed here, case by case, for a person to correct.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from .domain import Case, Plausibility, case_breaches
from .store import Store, count_quarantine, stored_case_data

__all__ = ["CaseBreach", "CheckReport", "check_store"]

#: Cases read per query: the store is walked a page at a time, not loaded whole.
PAGE = 500


class CaseBreach(BaseModel):
    """One rule one stored case breaks (no personal data: ids, the field and the rule)."""

    model_config = ConfigDict(frozen=True)

    case_id: str
    rule: str
    field: str
    entity: str | None
    message: str


class CheckReport(BaseModel):
    """What ``check_store`` found."""

    cases: int = 0
    cases_breaking: int = 0
    breaches: list[CaseBreach] = Field(default_factory=list)
    quarantined: int = Field(default=0, description="Resources set aside by pulls and imports.")

    def line(self) -> str:
        """The findings in one line, for a terminal."""
        return (
            f"checked {self.cases} cases: {self.cases_breaking} break a rule ({len(self.breaches)} breaches); "
            f"{self.quarantined} resources in quarantine"
        )


#: The rule of a stored case this version cannot read (its model changed since: an id it now refuses).
UNREADABLE = "unreadable"


def _stored(store: Store) -> Iterator[tuple[str, dict[str, Any]]]:
    offset = 0
    while True:
        with store.session(read_only=True) as session:
            page = stored_case_data(session, limit=PAGE, offset=offset)
        yield from page
        if len(page) < PAGE:
            return
        offset += PAGE


def _unreadable(case_id: str, exc: ValidationError) -> list[CaseBreach]:
    """Where the stored case fails the model, without the stored values (names, dates: the messages of a
    validator of our own may quote them, so those are told as a rule broken, not in its words)."""
    return [
        CaseBreach(
            case_id=case_id,
            rule=UNREADABLE,
            field=".".join(str(p) for p in error["loc"]) or "<case>",
            entity=None,
            message="this version cannot read the stored case: "
            + ("a rule of the case model is broken" if error["type"] == "value_error" else error["msg"]),
        )
        for error in exc.errors(include_input=False, include_url=False)[:3]
    ]


def check_store(store: Store, rules: Plausibility) -> CheckReport:
    """Every breach of ``rules`` by the stored cases, and how many resources wait in quarantine."""
    report = CheckReport()
    for case_id, data in _stored(store):
        report.cases += 1
        try:
            case = Case.model_validate(data)
        except ValidationError as exc:
            report.cases_breaking += 1
            report.breaches += _unreadable(case_id, exc)
            continue
        found = case_breaches(case, rules)
        report.cases_breaking += bool(found)
        report.breaches += [
            CaseBreach(case_id=case.id, rule=b.rule, field=b.field, entity=b.entity, message=b.message) for b in found
        ]
    with store.session(read_only=True) as session:
        report.quarantined = count_quarantine(session)
    return report
