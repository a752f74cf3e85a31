"""CDS Hooks 2.0 messages: the request a hook sends, the cards answered, discovery and feedback."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

__all__ = [
    "Action",
    "Card",
    "CardsResponse",
    "Coding",
    "FeedbackEntry",
    "FeedbackRequest",
    "FhirAuthorization",
    "HookRequest",
    "Link",
    "OverrideReason",
    "Service",
    "Services",
    "Source",
    "Suggestion",
]


class FhirAuthorization(BaseModel):
    """The token the EHR hands over for reading what it did not prefetch."""

    model_config = ConfigDict(extra="allow")

    access_token: str = Field(min_length=1, max_length=8192)
    token_type: Literal["Bearer", "bearer"] = "Bearer"
    expires_in: int | None = None
    scope: str | None = None
    subject: str | None = None

    @field_validator("access_token")
    @classmethod
    def _sendable(cls, value: str) -> str:
        """A token that cannot go in an ``Authorization`` header is the EHR's mistake (400), found here
        rather than as a network error on the first read."""
        from ..fhir import header_token

        return header_token(value)


class HookRequest(BaseModel):
    """A hook call."""

    model_config = ConfigDict(extra="allow")

    hook: str = Field(min_length=1, max_length=64)
    hookInstance: str = Field(min_length=1, max_length=128)  # noqa: N815 (the spec's name)
    context: dict[str, Any]
    fhirServer: str | None = Field(default=None, max_length=2048)  # noqa: N815
    fhirAuthorization: FhirAuthorization | None = None  # noqa: N815
    prefetch: dict[str, Any] | None = None


class Coding(BaseModel):
    system: str | None = None
    code: str
    display: str | None = None


class Source(BaseModel):
    label: str
    url: str | None = None
    topic: Coding | None = None


class Action(BaseModel):
    type: Literal["create", "update", "delete"]
    description: str
    resource: dict[str, Any] | None = None


class Suggestion(BaseModel):
    label: str
    uuid: str
    isRecommended: bool = False  # noqa: N815
    actions: list[Action] = Field(default_factory=list)


class Link(BaseModel):
    label: str
    url: str
    type: Literal["absolute", "smart"] = "absolute"


class Card(BaseModel):
    """One card: ``uuid``, ``summary`` (< 140 characters), ``indicator`` and ``source`` are required."""

    uuid: str
    summary: str = Field(max_length=140)
    detail: str | None = None
    indicator: Literal["info", "warning", "critical"]
    source: Source
    suggestions: list[Suggestion] | None = None
    selectionBehavior: Literal["at-most-one", "any"] | None = None  # noqa: N815
    links: list[Link] | None = None


class CardsResponse(BaseModel):
    cards: list[Card] = Field(default_factory=list)


class Service(BaseModel):
    """One service as discovery lists it."""

    hook: str
    id: str
    title: str
    description: str
    prefetch: dict[str, str] = Field(default_factory=dict)


class Services(BaseModel):
    services: list[Service]


class OverrideReason(BaseModel):
    model_config = ConfigDict(extra="allow")

    reason: Coding | None = None
    userComment: str | None = Field(default=None, max_length=2000)  # noqa: N815


class AcceptedSuggestion(BaseModel):
    id: str = Field(min_length=1, max_length=128)


class FeedbackEntry(BaseModel):
    """What the clinician did with one card."""

    model_config = ConfigDict(extra="allow")

    card: str = Field(min_length=1, max_length=128)
    outcome: Literal["accepted", "overridden"]
    acceptedSuggestions: list[AcceptedSuggestion] = Field(default_factory=list, max_length=20)  # noqa: N815
    overrideReason: OverrideReason | None = None  # noqa: N815
    outcomeTimestamp: AwareDatetime  # noqa: N815  (stored in UTC: a time without an offset is no instant)

    @field_validator("outcomeTimestamp")
    @classmethod
    def _in_utc(cls, value: dt.datetime) -> dt.datetime:
        try:
            return value.astimezone(dt.UTC)
        except OverflowError:  # year 1 at +05:00 is before what a datetime can hold in UTC
            raise ValueError("outcomeTimestamp is out of range") from None


class FeedbackRequest(BaseModel):
    feedback: list[FeedbackEntry] = Field(min_length=1, max_length=100)
