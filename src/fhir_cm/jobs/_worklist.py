"""The worklist as a page: what ``GET /api/v1/worklist`` answers and ``fhir-cm worklist`` prints.

The items are read off the cases (``fhir_cm.worklist``); what turns them into a page — the filters,
earliest due first, the cut, the dates a hospital wrote as a year or a month said as written, the
stored cases this version cannot read counted — is written here once, so the terminal and the API
can never answer differently for the same store. Who may ask for whose worklist is the caller's to
decide (the API's keys; the command line has the store itself), and where the parts come from too:
the API keeps them by revision across requests, the command line reads them once (:func:`read_worklist`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from operator import attrgetter
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from fhir_cm.domain import ID_PATTERN, Case, Day, ProgrammeType
from fhir_cm.store import Store, UnreadableCase, list_case_records
from ._stored import every_record
from fhir_cm.worklist import ItemKind, WorklistItem, WorklistPart, load_worklist_rules, select_items, worklist_part

__all__ = ["MAX_PAGE", "WorklistAsk", "WorklistPage", "items_as_written", "read_worklist", "worklist_page"]

#: The most items on one page, on either door.
MAX_PAGE = 200


class WorklistAsk(BaseModel):
    """What is asked of a worklist: whose, which items, which page. Its values are checked as the API's
    query checks them, so the command line refuses what the API refuses."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    case_manager: Annotated[str, StringConstraints(pattern=ID_PATTERN)] | None = None
    programme: ProgrammeType | None = None
    kinds: frozenset[ItemKind] | None = None
    overdue: bool = False
    due_before: Day | None = None
    limit: Annotated[int, Field(ge=1, le=MAX_PAGE)] = 50
    offset: Annotated[int, Field(ge=0)] = 0


class WorklistPage(BaseModel):
    """A page of a worklist: what is due from a case manager across their open cases, earliest due first."""

    on: dt.date
    case_manager: str | None = Field(
        description="Whose worklist: the calling case manager's, or the one a supervisor asked for; null: "
        "every case manager's (and the cases with none) a supervisor oversees."
    )
    items: list[WorklistItem]
    total: int = Field(description="Items matching the filters, on every page.")
    overdue: int = Field(description="Of those, how many are overdue.")
    limit: int
    offset: int
    next_offset: int | None
    unreadable: int = Field(
        default=0,
        description="Stored cases this version cannot read (stored before a rule of the case model), left "
        "out here; `fhir-cm check` names them.",
    )


def worklist_page(
    store: Store,
    today: dt.date,
    parts: Iterable[WorklistPart],
    unreadable: Iterable[UnreadableCase],
    ask: WorklistAsk,
) -> tuple[WorklistPage, list[UnreadableCase]]:
    """The page ``ask`` selects from ``parts`` (the cases' items on ``today``), with its dates as written,
    and the cases among ``unreadable`` that could have held items of it (of the programme and case manager
    asked, judged by their rows): counted in the page, returned for the caller to name if it may.
    ``unreadable`` must hold only the cases the caller may be told of."""
    whose = None if ask.case_manager is None else {ask.case_manager}
    items = select_items(
        parts,
        case_managers=whose,
        programme=ask.programme,
        kinds=ask.kinds,
        overdue_only=ask.overdue,
        due_before=ask.due_before,
    )
    end = ask.offset + ask.limit
    told = [
        u for u in unreadable if ask.programme in (None, u.programme) and ask.case_manager in (None, u.case_manager_id)
    ]
    page = WorklistPage(
        on=today,
        case_manager=ask.case_manager,
        items=items_as_written(store, items[ask.offset : end]),
        total=len(items),
        overdue=sum(map(attrgetter("overdue"), items)),
        limit=ask.limit,
        offset=ask.offset,
        next_offset=end if end < len(items) else None,
        unreadable=len(told),
    )
    return page, told


def read_worklist(store: Store, today: dt.date, ask: WorklistAsk) -> tuple[WorklistPage, list[UnreadableCase]]:
    """:func:`worklist_page` over every stored case, read once (the command line's: nothing is kept
    between runs). Every case is read, as the API does, since whose a case is on ``today`` is read from
    its team's history, not from the row's current case manager."""
    rules = load_worklist_rules()
    unreadable: list[UnreadableCase] = []
    found = (worklist_part(record.case, today, rules) for record in every_record(store, unreadable))
    parts = [part for part in found if part is not None]
    return worklist_page(store, today, parts, unreadable, ask)


def items_as_written(store: Store, items: Sequence[WorklistItem]) -> list[WorklistItem]:
    """``items`` with their ``dates_as_written``: each date read from a year or a month, as written.

    The cases' maps are stored with them (``CaseRecord.dates_as_written``), so a page of items reads
    its few cases' rows (from the store's decoded cache where it can) and no resource."""
    wanted = {item.case_id for item in items if item.sources}
    if not wanted:
        return list(items)
    with store.session(read_only=True) as session:
        records = {r.case.id: r for r in list_case_records(session, ids=wanted, cache=store.cases, skipped=[])}
    out = []
    for item in items:
        record = records.get(item.case_id)
        said = record.dates_as_written if record is not None else {}
        as_written = {
            at: said[pointer]
            for at, source in item.sources.items()
            if record is not None and (pointer := _pointer(record.case, *source)) in said
        }
        out.append(item.model_copy(update={"dates_as_written": as_written}) if as_written else item)
    return out


def _pointer(case: Case, name: str, entity_id: str, field: str) -> str | None:
    """The JSON pointer into ``case`` of that entity's field (``/goals/2/due``), if the case holds it."""
    i = next((i for i, entity in enumerate(getattr(case, name)) if entity.id == entity_id), None)
    return None if i is None else f"/{name}/{i}/{field}"
