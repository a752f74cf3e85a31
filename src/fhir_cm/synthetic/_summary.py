"""What a generation run produced, counted as it streams by (cases are not kept in memory)."""

from __future__ import annotations

from pydantic import BaseModel, Field

from fhir_cm.domain import Case

__all__ = ["GenerationSummary"]


class GenerationSummary(BaseModel):
    """Counts over the cases of one run: enough to see at a glance that the mix is realistic."""

    seed: int
    cases: int = 0
    open: int = 0
    closed: int = 0
    programmes: dict[str, int] = Field(default_factory=dict)
    goals: int = 0
    self_care_goals: int = 0
    referrals: int = 0
    contacts: int = 0
    stays: int = 0
    transitions: int = 0
    readmissions: int = 0

    def add(self, case: Case) -> None:
        """Count one case in."""
        transitions = case.transitions
        self.cases += 1
        self.open += case.is_open
        self.closed += not case.is_open
        self.programmes[case.programme.value] = self.programmes.get(case.programme.value, 0) + 1
        self.goals += len(case.goals)
        self.self_care_goals += sum(g.self_care for g in case.goals)
        self.referrals += len(case.referrals)
        self.contacts += len(case.contacts)
        self.stays += len(case.stays)
        self.transitions += len(transitions)
        self.readmissions += sum(t.readmission for t in transitions)

    def line(self) -> str:
        """The run in one line, for a terminal."""
        return (
            f"{self.cases} cases ({self.open} open, {self.closed} closed; {len(self.programmes)} programmes), "
            f"{self.goals} goals ({self.self_care_goals} self-care), {self.referrals} referrals, "
            f"{self.contacts} contacts, {self.transitions} transitions ({self.readmissions} readmissions), "
            f"seed {self.seed}"
        )
