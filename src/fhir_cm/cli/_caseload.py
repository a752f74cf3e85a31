"""``fhir-cm caseload``: open cases per case manager and how long since each was seen, from the store.

The answer is ``jobs.read_caseload``'s, the one ``GET /api/v1/caseload`` answers with (same day, filters
and JSON), read over every stored case that can count: the command line holds the store itself, as a
supervisor of every programme would. A next follow-up the hospital wrote as due in a month or a year is
printed as written ("2025-07"), as the API says it, never as the last day it is counted by.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from ._app import app, open_configured_store, refused, reported, warn_unreadable

if TYPE_CHECKING:
    from ..caseload import CaseIntensity, ManagerCaseload

_OPTIONS = {"on": "--on", "programme": "--programme", "case_manager": "--case-manager"}
_PROGRAMMES = "health-care|social-work|rehabilitation|child-protection|behavioural-health"


@app.command("caseload", short_help="Open cases per case manager and days since each was seen.")
def caseload_command(
    on: Annotated[
        str | None,
        typer.Option("--on", metavar="YYYY-MM-DD", help="The caseload as it was on this day (default: today)."),
    ] = None,
    programme: Annotated[
        str | None, typer.Option("--programme", metavar=f"[{_PROGRAMMES}]", help="Only this programme's cases.")
    ] = None,
    case_manager: Annotated[
        str | None,
        typer.Option(
            "--case-manager", metavar="ID", help="Only this case manager's caseload (a practitioner id); default: all."
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The caseload as one JSON object, as GET /api/v1/caseload answers it.")
    ] = False,
) -> None:
    """List the open cases of each case manager with the days since the last face-to-face contact and the
    next follow-up due, flagged above FHIR_CM_CASELOAD_LIMIT (20 by default). A past day (--on) counts
    each case as it was then. Exits 2 on a value it cannot read."""
    from pydantic import ValidationError

    from ..config import get_settings
    from ..jobs import CaseloadAsk, read_caseload

    try:
        ask = CaseloadAsk.model_validate({"on": on, "programme": programme, "case_manager": case_manager})
    except ValidationError as exc:
        raise refused(exc, _OPTIONS) from None
    with reported():
        settings = get_settings()
    with open_configured_store() as store, reported():
        page, unreadable = read_caseload(
            store,
            dt.date.today(),
            ask,
            limit=settings.caseload_limit,
            future_tolerance_days=settings.future_tolerance_days,
        )
    if unreadable:
        warn_unreadable(unreadable, "left out of the caseload")
    if as_json:
        typer.echo(page.model_dump_json())
        return
    for manager in page.managers:
        typer.echo(_heading(manager))
        _print_cases(manager.cases)
    cases = sum(m.open_cases for m in page.managers)
    over = sum(m.over_limit for m in page.managers)
    typer.echo(
        f"fhir-cm: caseload on {page.on}: {cases} open case(s), {len(page.managers)} case manager(s), "
        f"{over} over the limit of {page.limit}",
        err=True,
    )


def _heading(m: ManagerCaseload) -> str:
    if m.case_manager is None:
        who = "no case manager"
    else:
        who = " ".join(x for x in (m.case_manager, m.case_manager_name) if x)
        who += f" ({m.case_manager_server})" if m.case_manager_server else ""
    over = ": over it" if m.over_limit else ""
    gaps = (
        f"; days since seen: average {m.average_days_since_face_to_face:g}, longest {m.max_days_since_face_to_face}"
        if m.max_days_since_face_to_face is not None
        else ""
    )
    return f"{who}: {m.open_cases} open case(s) (limit {m.limit}{over}); never seen: {m.cases_never_seen}{gaps}"


def _print_cases(cases: list[CaseIntensity]) -> None:
    rows = [
        (
            c.case_id,
            c.programme.value,
            c.status.value,
            c.last_face_to_face.isoformat() if c.last_face_to_face else "never",
            "-" if c.days_since_face_to_face is None else str(c.days_since_face_to_face),
            # As the API says it: the month or year the hospital wrote, else the day.
            c.next_follow_up_due_as_written or (c.next_follow_up_due.isoformat() if c.next_follow_up_due else "-"),
            str(c.follow_ups_overdue),
        )
        for c in cases
    ]
    header = ("case", "programme", "status", "last seen", "days", "next follow-up", "follow-ups overdue")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        typer.echo("  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
