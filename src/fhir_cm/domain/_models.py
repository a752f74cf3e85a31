"""The case-management model: what a case manager works with, with no FHIR or HTTP in it.

Every entity carries a stable ``id`` that is unique within its case. The adapter stamps that id as
the business identifier of the FHIR resource it becomes, which is what makes pushes idempotent.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any, Self, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StringConstraints,
    model_validator,
    StrictBool,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

from ._types import (
    AssessmentDomain,
    CareSetting,
    CaseStatus,
    ContactMode,
    DischargeDisposition,
    GoalAchievement,
    GoalStatus,
    PartyKind,
    ReferralKind,
    ReferralStatus,
    StayStatus,
    TeamRole,
)

__all__ = [
    "Contact",
    "Day",
    "Goal",
    "Need",
    "Party",
    "Period",
    "Referral",
    "Stay",
    "StatusChange",
    "TeamMember",
    "ID_PATTERN",
    "new_id",
]


#: Ids are what FHIR allows in a logical id and an identifier value — letters, digits, '-' and '.' —
#: but for '.' and '..', which no URL path carries (RFC 3986 removes them: Patient/.. is the base).
ID_PATTERN = r"^(?:[A-Za-z0-9\-][A-Za-z0-9\-.]{0,63}|\.[A-Za-z0-9\-][A-Za-z0-9\-.]{0,62}|\.\.[A-Za-z0-9\-.]{1,62})$"
EntityId = Annotated[str, StringConstraints(pattern=ID_PATTERN)]


class _NoControlCharacters:
    """Marks text that becomes a FHIR string, which may not hold the C0 control characters other than
    tab, line feed and carriage return: refused here, where the person who typed it can be told (the
    field named), rather than in a resource a server rejects.

    Checked by pydantic's own validator after the text's other constraints (a pattern, in Rust): a
    validator of ours, called on every field of every model, was most of the time reading a case took.
    """

    _check = core_schema.custom_error_schema(
        core_schema.str_schema(pattern=r"^[^\x00-\x08\x0b\x0c\x0e-\x1f]*$"),
        custom_error_type="control_characters",
        custom_error_message="text may not contain control characters (tab, line feed and carriage return are fine)",
    )

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.chain_schema([handler(source), self._check])

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        """The text's own schema, read and written alike (a chain's would differ between the two, and
        split every model holding text into an input and an output schema in the OpenAPI document)."""
        return handler(schema["steps"][0] if schema["type"] == "chain" else schema)


_NO_CONTROL = _NoControlCharacters()
Text = Annotated[str, StringConstraints(min_length=1, max_length=10_000), _NO_CONTROL]


def _none_if_empty(value: object) -> object:
    """FHIR has no empty strings (``""`` is invalid, and a server refuses the resource holding it):
    an empty note, reason or name says nothing, so it is none — where the person typing can see it,
    rather than a push failing later. A stored case holding one reads as if it had none."""
    return None if value == "" else value


_BLANK_IS_NONE = BeforeValidator(_none_if_empty)
#: Optional free text, ``""`` taken as none: a name (500 characters), a reason or a measure (2,000), a note (10,000).
OptionalName = Annotated[Annotated[str, StringConstraints(max_length=500), _NO_CONTROL] | None, _BLANK_IS_NONE]
OptionalText = Annotated[Annotated[str, StringConstraints(max_length=2_000), _NO_CONTROL] | None, _BLANK_IS_NONE]
OptionalNote = Annotated[Annotated[str, StringConstraints(max_length=10_000), _NO_CONTROL] | None, _BLANK_IS_NONE]

_V = TypeVar("_V")


def once_each(values: list[_V]) -> list[_V]:
    """A list of values that is a set (eligibility reasons, strengths, the needs addressed) holds each
    once, in the order first given: a repeat says nothing more, and written out it would repeat a FHIR
    reason or reference. Kept once rather than refused, so a case stored or pulled with one reads."""
    return list(dict.fromkeys(values))


#: Strengths seen, each once (``once_each``).
Strengths = Annotated[list[Text], AfterValidator(once_each)]
#: The ids of the needs a goal or referral addresses, each once (``once_each``).
Addressed = Annotated[list[EntityId], AfterValidator(once_each)]


class _CalendarDay:
    """Only a calendar day is a day: a ``date`` (not a ``datetime``), or text written ``YYYY-MM-DD``.

    Pydantic would read ``0`` (or ``"0"``) as 1970-01-01, a Unix timestamp, and a ``datetime``
    at midnight as its date; each is more likely a mistake than a day someone meant, and a wrong
    day silently shifts every figure computed from it. Checked by pydantic's own validation (a strict
    date, or text of that pattern read as a date) rather than a validator of ours, called for every date
    of a case each time one is read.
    """

    _written = core_schema.chain_schema(
        [core_schema.str_schema(pattern=r"^\d{4}-\d{2}-\d{2}$"), core_schema.date_schema()]
    )
    # From JSON, text alone (a strict date would read "0" as 1970-01-01); from Python, a date object too.
    _either = core_schema.json_or_python_schema(
        json_schema=_written,
        python_schema=core_schema.union_schema([core_schema.date_schema(strict=True), _written]),
    )
    _schema = core_schema.custom_error_schema(
        _either,
        custom_error_type="calendar_day",
        custom_error_message="a date is a calendar day, written YYYY-MM-DD",
    )

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return self._schema

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return {"type": "string", "format": "date"}  # as a date's: the checks above are how it is read


#: A calendar day, written ``YYYY-MM-DD`` (no timestamps, no times).
Day = Annotated[dt.date, _CalendarDay()]


def new_id() -> str:
    """A fresh entity id (random UUID, hex)."""
    return uuid.uuid4().hex


class _Model(BaseModel):
    # Unknown fields are an error: a typo in an API call must not be silently dropped.
    model_config = ConfigDict(extra="forbid", validate_assignment=True, use_enum_values=False)


def _check_order(start: dt.date | None, end: dt.date | None, what: str) -> None:
    if start is not None and end is not None and end < start:
        raise ValueError(f"{what} ends ({end}) before it starts ({start})")


class Period(_Model):
    """A span of days; an open end means 'still going'."""

    start: Day
    end: Day | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self.start, self.end, "the period")
        return self


#: The base URL of another server: a scheme, a host, a path; no query, fragment or blank.
_SERVER = r"^[A-Za-z][A-Za-z0-9+.\-]*://[^/?#\s]+(/[^?#\s]*)?$"
ServerUrl = Annotated[
    Annotated[str, StringConstraints(pattern=_SERVER, max_length=1_000), _NO_CONTROL] | None, _BLANK_IS_NONE
]


class Party(_Model):
    """A person or organisation the case refers to, by its id in the record system (e.g. the EHR).

    ``server`` names the record system when it is not the case's own (the server the case syncs
    with, or the one a file came from): an *outside* party — another trust's GP on the care team, an
    episode managed from another hospital. Its ``id`` is that server's, and says nothing of a local
    record of the same id: two servers number their records alike, and read as the local one, the
    care team showed the wrong person (and gave that person's login the case).
    """

    kind: PartyKind
    id: EntityId
    name: OptionalName = None
    server: ServerUrl = Field(
        default=None,
        description="The base URL of the server keeping this party's record, when it is not the one the case "
        "syncs with (an outside party); left out, the party is a local record.",
        # A local party is written as before: stored cases, API answers and files stay as they were.
        exclude_if=lambda server: server is None,
    )

    @property
    def outside(self) -> bool:
        """Whether the party's record is another server's (see ``server``)."""
        return self.server is not None

    def same_as(self, other: Party | None) -> bool:
        """Whether ``other`` is the same record (kind, id and server; the name aside): an outside party is
        never the local one of its id."""
        return other is not None and (self.kind, self.id, self.server) == (other.kind, other.id, other.server)

    def is_local(self, kind: PartyKind, party_id: str) -> bool:
        """Whether this is the local record ``kind``/``party_id`` (a login's practitioner, say): never an
        outside party of the same id."""
        return self.server is None and self.kind is kind and self.id == party_id


class StatusChange(_Model):
    """One stretch of time a case (or referral) spent in one status, and why it got there."""

    status: CaseStatus
    start: Day
    end: Day | None = None
    reason: OptionalText = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self.start, self.end, f"the '{self.status}' status period")
        return self


class Need(_Model):
    """An assessment finding: a problem or health concern the plan addresses, with the strengths seen."""

    id: EntityId = Field(default_factory=new_id)
    domain: AssessmentDomain
    finding: Text
    recorded: Day
    resolved: Day | None = None
    strengths: Strengths = Field(default_factory=list)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self.recorded, self.resolved, "the need")
        return self


class Goal(_Model):
    """A goal of the plan; ``self_care`` goals are set by the patient themself."""

    id: EntityId = Field(default_factory=new_id)
    description: Text
    self_care: StrictBool = False
    status: GoalStatus = GoalStatus.ACTIVE
    achievement: GoalAchievement | None = None
    start: Day | None = None
    due: Day | None = None
    target: OptionalText = Field(default=None, description="The measure, e.g. 'walks 200 m unaided'.")
    addresses: Addressed = Field(default_factory=list, description="Ids of the needs this goal addresses.")

    @model_validator(mode="after")
    def _dated(self) -> Self:
        if self.start is None and self.due is None:
            raise ValueError("a goal needs a start date or a due date (or both)")
        _check_order(self.start, self.due, "the goal")
        return self


class Referral(_Model):
    """A referral or intervention: a service asked of someone, with its own life cycle."""

    id: EntityId = Field(default_factory=new_id)
    kind: ReferralKind
    service: Text = Field(description="What is asked for, in words, e.g. 'home physiotherapy 2x/week'.")
    status: ReferralStatus = ReferralStatus.REQUESTED
    status_reason: OptionalText = None
    authored: Day
    due: Day | None = None
    target: Party | None = Field(default=None, description="Who is asked to perform it.")
    addresses: Addressed = Field(default_factory=list, description="Ids of the needs it addresses.")
    for_stay: EntityId | None = Field(default=None, description="The stay it follows up on (post-discharge follow-up).")
    requester: Party | None = Field(
        default=None,
        description="Who asked for it, when not the case's case manager (a supervisor's referral in a case with "
        "none): a practitioner or organisation. Left out, the case manager is the requester.",
    )

    @model_validator(mode="after")
    def _reasoned(self) -> Self:
        if self.status in _NEEDS_REASON and not self.status_reason:
            raise ValueError(f"a referral that is '{self.status}' needs a status_reason saying why")
        if self.requester is not None and self.requester.kind not in _REQUESTERS:
            raise ValueError("a referral's requester is a practitioner or an organisation")
        _check_order(self.authored, self.due, "the referral")
        return self


#: Who may ask for a service (the Gravity referral Task's requester: Practitioner, PractitionerRole, Organization).
_REQUESTERS = frozenset({PartyKind.PRACTITIONER, PartyKind.ORGANISATION})
_NEEDS_REASON = {ReferralStatus.REJECTED, ReferralStatus.CANCELLED, ReferralStatus.FAILED, ReferralStatus.ON_HOLD}


class TeamMember(_Model):
    """A member of the care team, for the time they were on it."""

    id: EntityId = Field(default_factory=new_id)
    role: TeamRole
    party: Party
    start: Day | None = None
    end: Day | None = None

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        _check_order(self.start, self.end, "the team membership")
        return self


class Contact(_Model):
    """A monitoring touch-point between the case manager and the patient (or family)."""

    id: EntityId = Field(default_factory=new_id)
    date: Day
    mode: ContactMode
    note: OptionalNote = None


class Stay(_Model):
    """A stay in one care setting (an admission, a home-health episode, …)."""

    id: EntityId = Field(default_factory=new_id)
    setting: CareSetting
    status: StayStatus = StayStatus.FINISHED
    start: Day
    end: Day | None = None
    discharge_disposition: DischargeDisposition | None = None
    provider: Party | None = Field(default=None, description="The organisation providing care in this setting.")

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        _check_order(self.start, self.end, "the stay")
        if self.status is StayStatus.FINISHED and self.end is None:
            raise ValueError("a finished stay needs an end date")
        if self.status in (StayStatus.PLANNED, StayStatus.IN_PROGRESS) and self.discharge_disposition is not None:
            raise ValueError(f"a stay that is '{self.status}' cannot have a discharge disposition yet")
        return self
