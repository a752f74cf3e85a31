"""The console's Worklist view end to end: `fhir-cm serve` on a store of its own (dated from today, the day the
server counts on), Debian's Chromium driven by Playwright.

The served process reads its own clock: what the page says of a due day is checked against the day the
worklist the page fetched was computed on (``on`` in its answer), which must be a day this test's clock read
between seeding the store and that answer — so a run that crosses midnight checks the next day's words.

A case manager opens their worklist: what is due across their open cases, earliest first, each row saying in
words how far its due day is, a goal's due month as the hospital wrote it, and a link to the case; another
case manager's cases are not there. The filters narrow it (kind, overdue only, due before) and one the API
refuses is said beside the form. A supervisor chooses a case manager among those of the caseload, sees whose
each item is, and pages through every case manager's items.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.store import ApiRole, create_api_key, open_store, save_case
from tests.api.test_dates_as_written import _import
from tests.api_process import ApiProcess
from tests.console.test_console_browser import _require_chromium, browser, page, shot, sign_in

__all__ = ["browser", "page"]  # the browser fixtures, used here on this module's store

TODAY = dt.date.today()
#: A month well before today, as a hospital writes a goal's due date; read as due by its last day.
MONTH = (TODAY.replace(day=1) - dt.timedelta(days=40)).strftime("%Y-%m")
#: The day that month is read as (its last): what the page gives as the goal's due day in the date's title.
MONTH_READ = (dt.date.fromisoformat(f"{MONTH}-01").replace(day=28) + dt.timedelta(days=4)).replace(
    day=1
) - dt.timedelta(days=1)
#: How many of Bea's cases: with Ann's, more items than one page of 25.
BEAS = 24


def day(offset: int) -> str:
    return (TODAY + dt.timedelta(days=offset)).isoformat()


def case(case_id: str, manager: str, name: str, **fields: Any) -> Case:
    data: dict[str, Any] = {
        "id": case_id,
        "programme": "health-care",
        "period": {"start": day(-200)},
        "patient": {"kind": "patient", "id": f"p-{case_id}"},
        "case_manager": {"kind": "practitioner", "id": manager, "name": name},
        "contacts": [{"id": f"{case_id}-seen", "date": day(-1), "mode": "face-to-face"}],
    }
    return Case.model_validate(data | fields)


ANN = [
    case(
        "wl-goal",
        "pr-ann",
        "Ann Able",
        goals=[{"id": "g-walk", "description": "Walk to the shop", "start": day(-150), "due": day(-60)}],
    ),
    case(
        "wl-referral",
        "pr-ann",
        "Ann Able",
        referrals=[
            {
                "id": "r-meals",
                "kind": "food",
                "service": "Meals on wheels",
                "authored": day(-5),
                "due": day(3),
                "status": "accepted",
            }
        ],
    ),
    case("wl-unseen", "pr-ann", "Ann Able", contacts=[]),  # not seen face to face since it began
]
BEA = [
    case(
        f"wl-bea-{i:02}",
        "pr-bea",
        "Bea Bright",
        contacts=[{"id": f"c-{i}", "date": day(-40 - i), "mode": "face-to-face"}],
    )
    for i in range(BEAS)
]


class Desk:
    """The served API and the keys of a supervisor and of Ann, a case manager."""

    def __init__(self, base: str, keys: dict[str, str]) -> None:
        self.base = base
        self.supervisor, self.ann = keys["supervisor"], keys["ann"]


def _seed(url: str, tmp_path: Path) -> dict[str, str]:
    settings = Settings(database_url=url)
    with open_store(url) as store:
        # The goal as Ann's hospital wrote it: due in a month, not on a day.
        def due_in_a_month(resource: dict[str, Any]) -> None:
            if resource["resourceType"] == "Goal":
                resource["target"][0]["dueDate"] = MONTH

        _import(tmp_path, store, settings, ANN[0], due_in_a_month)
        with store.session() as s:
            for c in [*ANN[1:], *BEA]:
                save_case(s, c, enqueue=False)
            _, supervisor = create_api_key(s, name="Supervisor", role=ApiRole.SUPERVISOR)
            _, ann = create_api_key(s, name="Ann Able", role=ApiRole.CASE_MANAGER, practitioner_id="pr-ann")
    return {"supervisor": supervisor, "ann": ann}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Desk]:
    _require_chromium()
    where = tmp_path_factory.mktemp("worklist")
    url = f"sqlite:///{where / 'console.db'}"
    keys = _seed(url, where)
    api = ApiProcess(url)
    api.start()
    try:
        yield Desk(api.base, keys)
    finally:
        api.stop()


def open_worklist(page: Any, desk: Desk, key: str) -> tuple[Any, dt.date]:
    """The worklist's table as the page shows it, and the day the server computed it on."""
    sign_in(page, desk.base, key)
    with page.expect_response(worklist_answer) as answered:
        page.get_by_role("navigation", name="Console").get_by_role("link", name="Worklist").click()
    page.get_by_role("heading", name=re.compile(r"^Worklist")).wait_for()
    return page.get_by_role("table", name="Worklist"), served_on(answered.value)


def worklist_answer(response: Any) -> bool:
    return urlsplit(response.url).path == "/api/v1/worklist" and response.request.method == "GET"


def served_on(response: Any) -> dt.date:
    """The day the server computed a worklist on: a day this test's clock read between seeding and now."""
    on = dt.date.fromisoformat(response.json()["on"])
    assert TODAY <= on <= dt.date.today()
    return on


def when(due: dt.date, on: dt.date) -> str:
    """How the page words a due day on the day ``on``."""
    days = (due - on).days
    n = f"{abs(days)} day{'' if abs(days) == 1 else 's'}"
    return "Due today" if days == 0 else f"Overdue by {n}" if days < 0 else f"Due in {n}"


def rows(table: Any) -> list[list[str]]:
    return [text.split("\t") for text in table.locator("tbody tr").all_inner_texts()]


def test_a_case_manager_reads_what_is_due_from_them(served: Desk, page: Any) -> None:
    table, on = open_worklist(page, served, served.ann)
    assert page.get_by_role("heading", level=1).inner_text() == f"Worklist on {on.isoformat()}"
    headers = table.get_by_role("columnheader").all_inner_texts()
    assert headers == ["Due", "When", "Case", "What is due", "Kind", "Since"]
    unseen_due = dt.date.fromisoformat(day(-200)) + dt.timedelta(days=30)
    assert rows(table) == [
        [unseen_due.isoformat(), when(unseen_due, on), "wl-unseen", "Not seen face to face yet", "no face to face",
         "—"],
        [MONTH, when(MONTH_READ, on), "wl-goal", "Goal not attained: Walk to the shop", "goal past due", "—"],
        [day(3), when(dt.date.fromisoformat(day(3)), on), "wl-referral", "Food referral due: Meals on wheels",
         "referral due", "—"],
    ]  # fmt: skip
    written = table.locator("tbody tr").nth(1).locator("time")
    assert written.get_attribute("title") == f"written as {MONTH}, read as {MONTH_READ.isoformat()}"
    assert page.get_by_role("status").filter(has_text="items").inner_text() == "3 items, 2 overdue, earliest due first."
    assert "wl-bea" not in page.locator("#view").inner_text()  # Bea's cases are hers to work
    shot(page, "worklist")
    table.get_by_role("link", name="wl-goal").click()
    page.get_by_role("heading", name="Case wl-goal").wait_for()


def test_the_filters_narrow_the_list_and_one_refused_is_said_by_the_form(served: Desk, page: Any) -> None:
    table, _ = open_worklist(page, served, served.ann)
    form = page.get_by_role("form", name="Worklist filters")
    form.get_by_label("Kind").select_option("referral-due")
    form.get_by_role("button", name="Show").click()
    page.get_by_role("status").filter(has_text="1 item,").wait_for()
    assert [r[2] for r in rows(table)] == ["wl-referral"]

    form = page.get_by_role("form", name="Worklist filters")
    form.get_by_label("Kind").select_option("")
    form.get_by_label("Overdue only").check()
    form.get_by_role("button", name="Show").click()
    page.get_by_role("status").filter(has_text="2 items, 2 overdue").wait_for()
    assert [r[2] for r in rows(page.get_by_role("table", name="Worklist"))] == ["wl-unseen", "wl-goal"]

    form = page.get_by_role("form", name="Worklist filters")
    form.get_by_label("Due before").fill(day(-200))
    form.get_by_role("button", name="Show").click()
    page.get_by_text("Nothing is due.").wait_for()
    assert page.get_by_role("table", name="Worklist").count() == 0

    # A filter kept in the tab that the API refuses (typed into the session by hand): said beside the form.
    page.evaluate('sessionStorage.setItem("fhir-cm-worklist", JSON.stringify({due_before: "tomorrow"}))')
    page.evaluate("route()")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "due_before" in alert.inner_text()
    assert page.get_by_role("form", name="Worklist filters").is_visible()


def test_a_supervisor_chooses_a_case_manager_and_pages_through_everyones(served: Desk, page: Any) -> None:
    table, on = open_worklist(page, served, served.supervisor)
    assert table.get_by_role("columnheader").all_inner_texts()[-1] == "Case manager"
    heading = page.get_by_role("heading", level=1)
    assert heading.inner_text() == f"Worklist on {on.isoformat()} (page 1 of 2)"
    pager = page.get_by_role("navigation", name="Pages of the worklist")
    assert pager.inner_text().split() == f"Items 1–25 of {BEAS + 3} (page 1 of 2) Next page".split()
    pager.get_by_role("link", name="Next page").click()
    page.get_by_role("heading", name=re.compile(r"\(page 2 of 2\)$")).wait_for()
    assert len(rows(page.get_by_role("table", name="Worklist"))) == BEAS + 3 - 25

    form = page.get_by_role("form", name="Worklist filters")
    options = form.get_by_label("Case manager").locator("option").all_inner_texts()
    assert options == ["Every case manager", "Ann Able (pr-ann)", "Bea Bright (pr-bea)"]
    form.get_by_label("Case manager").select_option("pr-ann")
    with page.expect_response(worklist_answer) as answered:
        form.get_by_role("button", name="Show").click()
    page.get_by_role("heading", name=f"Worklist of Ann Able on {served_on(answered.value).isoformat()}").wait_for()
    assert page.url.endswith("#worklist")  # the filtered list from its first page
    assert {r[-1] for r in rows(page.get_by_role("table", name="Worklist"))} == {"Ann Able"}
