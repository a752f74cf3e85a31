"""What a push and a pull did, as counts people and scripts can read (no PHI: case ids and element names only)."""

from __future__ import annotations

from typing import Protocol

from pydantic import BaseModel, Field, PrivateAttr

from ..fhir import ServerReason

__all__ = ["CaseFailure", "CaseWarning", "PullReport", "PushReport", "tally_set_aside"]


class CaseFailure(BaseModel):
    """Why one case was not pushed. ``permanent`` failures wait for a person (a conflict, a refused
    resource); the others go back to the outbox and are tried again."""

    case_id: str
    reason: str
    permanent: bool
    #: The server's own reason (status, issue code, message code, first line of its diagnostics,
    #: scrubbed of the case's data) when a server answered; ``reason`` says the same for people.
    server: ServerReason | None = None
    #: Seconds the server asked for before the case is sent again (``Retry-After`` on a 429 or 503
    #: the client could not wait out): its outbox row is not due before then.
    retry_after: float | None = None


class CaseWarning(BaseModel):
    """A write the server took with a warning (a profile it checks, a code it does not know): done,
    but what the server thought of it is worth a look. Or (``taken`` False) a Provenance the server
    refused in a batch beside the writes it took: those stand, without their audit record."""

    case_id: str
    resource_type: str
    server: ServerReason
    taken: bool = True


class PushReport(BaseModel):
    """Counts over the case resources a push looked at (Patients, the Device and Provenances apart)."""

    cases: int = 0
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    failed: int = 0
    conflicts: int = 0
    provenances: int = 0
    failures: list[CaseFailure] = Field(default_factory=list)
    warnings: list[CaseWarning] = Field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.failures

    @property
    def permanent_failures(self) -> list[CaseFailure]:
        return [f for f in self.failures if f.permanent]

    def add(self, other: PushReport) -> None:
        """Fold another report (one case, one batch) into this one."""
        for name in ("cases", "created", "updated", "unchanged", "failed", "conflicts", "provenances"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        self.failures.extend(other.failures)
        self.warnings.extend(other.warnings)

    def line(self) -> str:
        """One line for a terminal: ``12 cases: 80 created, 3 updated, 40 unchanged, 1 failed``."""
        return (
            f"{self.cases} cases: {self.created} created, {self.updated} updated, "
            f"{self.unchanged} unchanged, {self.failed} failed"
        )


class _SetAsideCounts(Protocol):
    quarantined: int
    still_quarantined: int


def tally_set_aside(counts: _SetAsideCounts, seen: set[int], entry_id: int, *, news: bool) -> None:
    """Count a resource put in quarantine (entry ``entry_id``) once per entry and run: as
    ``quarantined`` when it is news (a new entry or version), as ``still_quarantined`` when the
    entry held it already. Counting every read would report the same unreadable resource again at
    every run, since each pull reads the overlap of the last and the tracker every Encounter of a case."""
    if entry_id in seen:
        return
    seen.add(entry_id)
    if news:
        counts.quarantined += 1
    else:
        counts.still_quarantined += 1


class PullReport(BaseModel):
    """What a pull did. Counts are of resources, except ``new_cases``/``updated_cases``."""

    server: str
    fetched: int = 0
    new_cases: int = 0
    updated_cases: int = 0
    unchanged: int = 0
    quarantined: int = Field(
        default=0, description="Resources set aside this pull: a new entry in quarantine, or a new version in one."
    )
    still_quarantined: int = Field(
        default=0,
        description="Resources read again (each pull reads an overlap) that an earlier pull set aside already.",
    )
    conflicts: int = 0
    unplaced: int = Field(default=0, description="Newer resources that belong to no case in the store.")
    ignored: int = Field(default=0, description="Others' resources that do not read as part of a case.")
    skipped_types: dict[str, str] = Field(default_factory=dict, description="Types not pulled, and why.")
    watermarks: dict[str, str] = Field(default_factory=dict)
    cases: list[str] = Field(default_factory=list, description="Ids of the cases created or updated.")
    merged_into: str | None = Field(
        default=None,
        description="With --patient: the record the hospital merged that Patient into (pulled too).",
    )
    _set_aside: set[int] = PrivateAttr(default_factory=set)

    def count_set_aside(self, entry_id: int, *, news: bool) -> None:
        """Count a resource put in quarantine (entry ``entry_id``); see ``tally_set_aside``."""
        tally_set_aside(self, self._set_aside, entry_id, news=news)

    def quarantine_text(self) -> str:
        """``2 quarantined``, with ``(5 already in quarantine)`` when resources set aside before were read again."""
        again = f" ({self.still_quarantined} already in quarantine)" if self.still_quarantined else ""
        return f"{self.quarantined} quarantined{again}"
