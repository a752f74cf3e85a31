"""A patient's facts folded together, as the rules assess them, and the codes facts carry.

A fact (``FactRecord``: kind, dates, codes, a flag) is what screening keeps of one resource
(``_facts``); ``PatientFacts`` folds one patient's: their birth, stays (a sub-encounter folded into
its stay), conditions, and screens — the panels, judged with their members' answers, and the answers
recorded with no panel that no panel lists (``screened``). Facts name what links them by codes
(``member|<id>``, ``part-of|<id>``, ``alone|<panel>``…), whose vocabulary is here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Literal

from pydantic import BaseModel, Field

from ..store import FactRecord as Fact

__all__ = [
    "ALONE",
    "ANSWER",
    "MEMBER",
    "PART_OF",
    "REPLACED_BY",
    "UNTIL",
    "VOIDED",
    "ConditionFact",
    "EncounterFact",
    "PatientFacts",
    "ScreenFact",
]

#: A Patient fact's code naming the record it was merged into (``replaced-by|Patient/<id>``).
REPLACED_BY = "replaced-by"
#: An Encounter fact's code naming the Encounter it is part of (``part-of|<id>``).
PART_OF = "part-of"
#: A screen fact's code naming one of its member Observations (``member|<id>``, from ``hasMember``).
MEMBER = "member"
#: An Encounter or screen fact's code naming the last day its start allows, when written as a month or
#: a year (``until|2026-05-31``): ``start`` is the first.
UNTIL = "until"
#: The kind of fact of an Observation that is no screen but answers positively, or groups others (a
#: section of a panel): it counts as the answer of a screen that lists it as a member, or lists a
#: section that does.
ANSWER = "answer"
#: An answer fact's code naming the panel it is a screen of, recorded with no panel (``alone|<panel>``).
ALONE = "alone"
#: The kind of fact of a cancelled or entered-in-error panel: its members are no screen of their own.
VOIDED = "voided"


class EncounterFact(BaseModel):
    kind: Literal["inpatient", "emergency"]
    start: dt.date
    end: dt.date | None = None
    id: str = ""
    part_of: str | None = Field(default=None, description="The id of the Encounter this one is part of.")
    start_last: dt.date | None = Field(
        default=None, description="The last day a start written as a month or a year allows (``start`` the first)."
    )

    @property
    def began(self) -> tuple[dt.date, dt.date]:
        """The first and last day the start allows (the same day for a full date)."""
        return self.start, self.start_last or self.start


class ConditionFact(BaseModel):
    codes: list[str]
    on: dt.date | None = Field(default=None, description="Onset (else recorded): the first day it allows.")


class ScreenFact(BaseModel):
    panel: str
    on: dt.date
    positive: bool
    on_last: dt.date | None = Field(default=None, description="The last day a month or a year allows.")
    members: list[str] = Field(default_factory=list, description="The ids of its member Observations.")


class PatientFacts(BaseModel):
    """Everything the rules look at for one patient."""

    patient_id: str
    deceased: bool = False
    replaced_by: str | None = Field(default=None, description="The record this one was merged into.")
    born: tuple[dt.date, dt.date] | None = Field(
        default=None, description="The first and last day the birth date allows (a year, a month, a day)."
    )
    open_case: bool = False
    encounters: list[EncounterFact] = Field(default_factory=list)
    conditions: list[ConditionFact] = Field(default_factory=list)
    screens: list[ScreenFact] = Field(default_factory=list)
    answers: set[str] = Field(
        default_factory=set, description="The ids of the patient's Observations that answer positively."
    )
    groups: dict[str, list[str]] = Field(
        default_factory=dict, description="The members of the patient's Observations grouping others (a section)."
    )
    alone: dict[str, ScreenFact] = Field(
        default_factory=dict, description="The answers recorded with no panel, each the screen it stands for."
    )
    voided: dict[str, list[str]] = Field(
        default_factory=dict, description="The members of the patient's cancelled or entered-in-error panels."
    )

    def screened(self) -> list[ScreenFact]:
        """The patient's screens: the panels, and the answers recorded with no panel (as US Core's SDOH
        assessments and Gravity's let a screen be recorded) — those no panel of the patient lists,
        directly or through a section, nor a cancelled or entered-in-error one: a listed answer is its
        panel's, counted with it (or not at all). Answers of one panel on one day are one screen."""
        if not self.alone:
            return self.screens
        listed: set[str] = set()
        todo = [m for screen in self.screens for m in screen.members] + [m for ms in self.voided.values() for m in ms]
        while todo:
            member = todo.pop()
            if member not in listed:
                listed.add(member)
                todo += self.groups.get(member, [])
        alone = {(s.panel, s.on, s.on_last): s for rid, s in self.alone.items() if rid not in listed}
        return [*self.screens, *alone.values()]

    def positive(self, screen: ScreenFact) -> bool:
        """Whether a screen is positive: by its own interpretation or answers, or by a positive answer
        in one of its members — a screen recorded as Gravity's and US Core's SDOH assessments are, a
        panel whose answers are each an Observation of the patient it lists in ``hasMember`` — or in a
        member of a member (PRAPARE's sections, each grouping its answers). A member of another
        patient is not among this one's facts, so it never counts; a grouping listing itself ends."""
        seen: set[str] = set()
        todo = list(screen.members)
        while todo:
            member = todo.pop()
            if member in self.answers:
                return True
            if member not in seen:
                seen.add(member)
                todo += self.groups.get(member, [])
        return screen.positive

    def add(self, fact: Fact) -> None:
        """Fold one resource's fact in (the facts of other patients are the caller's mistake)."""
        if fact.kind == "patient":
            self.deceased = self.deceased or fact.flag
            self.replaced_by = self.replaced_by or _tagged(fact.codes, REPLACED_BY)
            if fact.start is not None and fact.end is not None:
                self.born = (fact.start, fact.end)
        elif fact.kind in ("inpatient", "emergency") and fact.start is not None:
            kind: Literal["inpatient", "emergency"] = "inpatient" if fact.kind == "inpatient" else "emergency"
            part_of = _tagged(fact.codes, PART_OF)
            self.encounters.append(
                EncounterFact(
                    kind=kind,
                    start=fact.start,
                    end=fact.end,
                    id=fact.resource_id,
                    part_of=part_of,
                    start_last=_tagged_day(fact.codes),
                )  # fmt: skip
            )
        elif fact.kind == "condition" and fact.codes:
            self.conditions.append(ConditionFact(codes=fact.codes, on=fact.start))
        elif fact.kind == "screen" and fact.start is not None and fact.codes:
            members = _members(fact.codes)
            self.screens.append(
                ScreenFact(
                    panel=fact.codes[0],
                    on=fact.start,
                    positive=fact.flag,
                    on_last=_tagged_day(fact.codes),
                    members=members,
                )  # fmt: skip
            )
        elif fact.kind == ANSWER:
            if fact.flag:
                self.answers.add(fact.resource_id)
            if members := _members(fact.codes):
                self.groups[fact.resource_id] = members
            if (panel := _tagged(fact.codes, ALONE)) is not None and fact.start is not None:
                self.alone[fact.resource_id] = ScreenFact(
                    panel=panel, on=fact.start, positive=True, on_last=_tagged_day(fact.codes)
                )
        elif fact.kind == VOIDED:
            self.voided[fact.resource_id] = _members(fact.codes)

    def age(self, on: dt.date) -> tuple[int, int] | None:
        """The youngest and oldest the patient can be on ``on`` (equal for a full birth date; a year
        or a month may straddle a birthday), or None without a birth date or born after ``on``. A
        birthday on 29 February falls on 1 March in a common year."""
        if self.born is None or self.born[0] > on:
            return None
        return _years(min(self.born[1], on), on), _years(self.born[0], on)

    def visits(self, kind: Literal["inpatient", "emergency"]) -> list[EncounterFact]:
        """The patient's stays (or emergency visits) of ``kind``: an Encounter ``partOf`` another of the
        same kind — a ward's sub-encounter of one hospitalisation — is folded into it, not counted as
        an admission of its own. One whose parent was not read, or is of another kind, counts."""
        ids = {e.id for e in self.encounters if e.kind == kind}
        return [e for e in self.encounters if e.kind == kind and (e.part_of is None or e.part_of not in ids)]


def _years(born: dt.date, on: dt.date) -> int:
    return on.year - born.year - ((on.month, on.day) < (born.month, born.day))


def _tagged(codes: Iterable[str], tag: str) -> str | None:
    """The value of a fact's ``tag|value`` code, if it carries one."""
    return next((c.partition("|")[2] for c in codes if c.startswith(f"{tag}|")), None)


def _members(codes: Iterable[str]) -> list[str]:
    """The member ids a fact's ``member|<id>`` codes name."""
    return [c.partition("|")[2] for c in codes if c.startswith(f"{MEMBER}|")]


def _tagged_day(codes: Iterable[str]) -> dt.date | None:
    value = _tagged(codes, UNTIL)
    try:
        return dt.date.fromisoformat(value) if value else None
    except ValueError:
        return None
