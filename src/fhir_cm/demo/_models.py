"""What the demo reports (the ``--json`` output), its error, and the progress callback it reports through."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pydantic import BaseModel, Field

from ..caseload import ManagerCaseload
from ..domain import CaseStatus
from ..outcomes import ProgrammeOutcomes
from ..store import RecordedTransition
from ..sync import PullRoundReport, PushReport
from ..errors import FhirCmError


class DemoError(FhirCmError):
    """The demo could not do its job (the FHIR server unreachable or refusing, the store unusable)."""


class DemoServerUnavailable(DemoError):
    """The FHIR server could not be reached, was busy or failed for now (a network error, 429, 5xx):
    the demo is worth running again later, as every command that talks to a server says with exit 75."""


Progress = Callable[[str], None]


class CaseWalk(BaseModel):
    """What the demo did with one case."""

    case_id: str
    programme: str
    status: CaseStatus
    walked: bool = Field(
        description="False when the case was already in the store (an earlier run) and was left as it is."
    )
    stages: list[str] = Field(description="The stages of the cycle walked, in order.")
    saves: int = Field(description="How many times the case was saved (one per step).")
    revision: int
    status_history: list[str]
    transitions: int


class ServerRoundTrip(BaseModel):
    """What the demo sent to a FHIR server and what it read back."""

    fhir_base: str
    push: PushReport
    pull: PullRoundReport
    follow_up_push: PushReport | None = Field(
        default=None, description="The push of what the transitions tracker added (follow-ups, team members)."
    )
    expected: dict[str, int] = Field(description="Resources per type the demo's cases should have on the server.")
    found: dict[str, int] = Field(description="The demo's resources found there per type (by identifier system).")
    duplicates: int
    missing: int
    matched: bool = Field(description="Every case read back from the server equals the case in the store.")
    differences: list[str] = Field(default_factory=list)


class DemoSummary(BaseModel):
    """What ``fhir-cm demo`` did and where to look: the ``--json`` output."""

    seed: int
    today: dt.date = Field(
        description="The day the journeys are dated up to (the real today unless --today); caseload and "
        "outcomes are as of it."
    )
    store: str
    store_file: str | None
    cases: list[CaseWalk]
    caseload_limit: int
    caseload: list[ManagerCaseload]
    outcomes: list[ProgrammeOutcomes]
    transitions: list[RecordedTransition]
    outbox: dict[str, int] = Field(description="The demo cases' outbox rows per status.")
    out_dir: str = Field(description="The folder the demo wrote its own files into.")
    export_file: str
    export_resources: dict[str, int]
    api: list[str] = Field(description="Commands that show the cases through the API.")
    server: ServerRoundTrip | None = None
