"""``fhir-cm worklist``: what is due from case managers, read from the configured store.

The page is ``jobs.read_worklist``'s, the one the API answers ``GET /api/v1/worklist`` with (same
filters, order, paging and JSON), read over every stored case: the command line holds the store
itself, as a supervisor of every programme would. A date a hospital wrote as a month or a year is
printed as written ("2025-05"), never as the last day it is counted by.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated

import typer

from ._app import app, day, open_configured_store, refused, reported, warn_unreadable

if TYPE_CHECKING:
    from ..jobs import WorklistPage
    from ..worklist import WorklistItem

#: The worklist's option of each field of ``jobs.WorklistAsk``, to name it when its value is refused.
_OPTIONS = {
    "case_manager": "--case-manager",
    "programme": "--programme",
    "kinds": "--kind",
    "due_before": "--due-before",
    "limit": "--limit",
    "offset": "--offset",
}
_KINDS = "referral-due|referral-no-reply|transition-follow-up|goal-past-due|no-face-to-face"
_PROGRAMMES = "health-care|social-work|rehabilitation|child-protection|behavioural-health"


@app.command("worklist", short_help="What is due: referrals, follow-ups, goals past due, visits.")
def worklist_command(
    case_manager: Annotated[
        str | None,
        typer.Option(
            "--case-manager",
            metavar="ID",
            help="Whose worklist (a practitioner id); default: every case manager's, and cases with none.",
        ),
    ] = None,
    programme: Annotated[
        str | None, typer.Option("--programme", metavar=f"[{_PROGRAMMES}]", help="Only this programme's cases.")
    ] = None,
    kind: Annotated[
        list[str] | None,
        typer.Option("--kind", metavar=f"[{_KINDS}]", help="Only items of this kind; repeat for several."),
    ] = None,
    overdue: Annotated[bool, typer.Option("--overdue", help="Only items past their due day.")] = False,
    due_before: Annotated[
        str | None,
        typer.Option(
            "--due-before", metavar="YYYY-MM-DD", help="Only items due before this day (the day itself not included)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="Items on the page (1 to 200).")] = 50,
    offset: Annotated[int, typer.Option("--offset", metavar="N", help="Items skipped before the page.")] = 0,
    today: Annotated[
        dt.date | None,
        typer.Option(
            "--today",
            metavar="YYYY-MM-DD",
            parser=day,
            help="Read the cases as they stood at the end of this day (default: today).",
        ),
    ] = None,
    as_json: Annotated[
        bool, typer.Option("--json", help="The page as one JSON object, as GET /api/v1/worklist answers it.")
    ] = False,
) -> None:
    """List what is due across open cases, earliest due first: referrals due or waiting for a reply,
    follow-ups after a move between care settings, goals past due and not attained, cases not seen face
    to face for too long (the rules: mappings/worklist-rules.json).

    A table on stdout (dates a hospital wrote as a month or a year as written); how many, how many
    overdue and the next page's --offset on stderr. Exits 2 on a filter it cannot read.
    """
    from pydantic import ValidationError

    from ..jobs import WorklistAsk, read_worklist

    asked = {"case_manager": case_manager, "programme": programme, "kinds": kind or None, "overdue": overdue}
    try:
        ask = WorklistAsk.model_validate(asked | {"due_before": due_before, "limit": limit, "offset": offset})
    except ValidationError as exc:
        raise refused(exc, _OPTIONS) from None
    with open_configured_store() as store, reported():
        page, unreadable = read_worklist(store, today or dt.date.today(), ask)
    if unreadable:
        warn_unreadable(unreadable, "left out of the worklist")
    if as_json:
        typer.echo(page.model_dump_json())
        return
    _print_table(page)


def _as_written(item: WorklistItem, pointer: str, value: dt.date | None) -> str:
    """A date of the item as its source wrote it: "2025-05" for a month, never an invented day."""
    if value is None:
        return "-"
    return item.dates_as_written.get(pointer, value.isoformat())


def _manager(item: WorklistItem) -> str:
    if item.case_manager is None:
        return f"{item.case_manager_name or '-'} ({item.case_manager_server})" if item.case_manager_server else "-"
    return f"{item.case_manager} {item.case_manager_name}" if item.case_manager_name else item.case_manager


def _print_table(page: WorklistPage) -> None:
    rows = [
        (
            _as_written(item, "/due", item.due),
            "yes" if item.overdue else "no",
            item.kind.value,
            item.case_id,
            _manager(item),
            _as_written(item, "/since", item.since),
            item.what,
        )
        for item in page.items
    ]
    header = ("due", "overdue", "kind", "case", "case manager", "since", "what")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header) - 1)]
    for row in [header, *rows]:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1])
    whose = f"case manager {page.case_manager}" if page.case_manager else "every case manager"
    shown = f"{page.offset + 1}-{page.offset + len(page.items)}" if page.items else "none"
    more = f"; next page: --offset {page.next_offset}" if page.next_offset is not None else ""
    typer.echo(
        f"fhir-cm: worklist of {whose} on {page.on}: {page.total} item(s), {page.overdue} overdue; "
        f"showing {shown}{more}",
        err=True,
    )
