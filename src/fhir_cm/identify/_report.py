"""What a screening run read and found (the CLI's summary and ``--json``'s ``run``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

__all__ = ["ScreeningReport"]


class ScreeningReport(BaseModel):
    """What a screening run read and found."""

    server: str
    scope: str = Field(description="'system', 'Group/<id>' or 'files'.")
    source: Literal["export", "search", "files"]
    since: str | None = Field(default=None, description="Only resources changed after this were read.")
    transaction_time: str = Field(description="The next run's since.")
    read: dict[str, int] = Field(default_factory=dict, description="Resources read, by type.")
    facts: int = Field(default=0, description="Resources that told screening something.")
    deleted: int = Field(default=0, description="Resources the export said were deleted (their facts dropped).")
    patients: int = Field(
        default=0, description="Patients ranked (everyone whose facts the store holds; a Group's members)."
    )
    candidates: int = 0
    excluded_open_case: int = 0
    reread: str | None = Field(
        default=None, description="Why everything was read though the scope had been screened (the rules changed)."
    )
    members: list[str] | None = Field(
        default=None, exclude=True, description="A Group's run: the patients it ranked (its members), else None."
    )
    groups: list[str] | None = Field(
        default=None,
        description="A Group's run: the Groups whose members it ranked — the one asked for, then those it "
        "lists, followed down — else None.",
    )
    added: int = Field(
        default=0,
        description="A Group's run: the Patients its Groups list that they did not at their last run, read "
        "whole (their data, older than the watermark, is not in an incremental export).",
    )

    def add(self, other: ScreeningReport) -> None:
        """Count what ``other`` (another read of the same run) read into this report."""
        for rtype, n in other.read.items():
            self.read[rtype] = self.read.get(rtype, 0) + n
        self.facts, self.deleted = self.facts + other.facts, self.deleted + other.deleted
