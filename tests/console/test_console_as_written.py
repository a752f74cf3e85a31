"""Dates a hospital wrote as a month, shown as that month where the console showed the day they are read as:
a case's care-team memberships and the status changes of its journey, the caseload's next follow-up and the
transitions' follow-up due."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api.test_dates_as_written import TEAMED, team_as_a_hospital_wrote_it
from tests.api.test_follow_ups_as_written import FOLLOWED, due_in_july
from tests.console.test_console_browser import (
    World,
    _import_as_a_hospital_wrote_it,
    browser,
    page,
    served,
    sign_in,
)

__all__ = ["browser", "page", "served"]  # the browser fixtures, on a store of this module's own


def test_team_memberships_and_status_changes_written_as_a_month_read_as_that_month(
    served: tuple[str, World], page: Any, tmp_path: Path
) -> None:
    """The care team said a nurse joined on 2025-01-01 and the journey that the case became active on
    2025-02-28, where the hospital wrote January and February."""
    base, world = served
    _import_as_a_hospital_wrote_it(world, TEAMED, team_as_a_hospital_wrote_it, tmp_path)
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{TEAMED.id}")
    page.get_by_role("heading", name=f"Case {TEAMED.id}").wait_for()
    team = page.get_by_role("table", name="Care team").locator("tbody tr")
    texts = team.all_inner_texts()
    assert sorted(texts) == ["n-1\tnurse\t2025-01\t—", "s-1\tsocial worker\t2025-01-10\t2025-03"]
    nurse = team.nth(texts.index("n-1\tnurse\t2025-01\t—"))
    assert nurse.locator("time").get_attribute("title") == "written as 2025-01, read as 2025-01-01"
    status = page.locator(".timeline li").filter(has_text="Status:")
    assert status.all_inner_texts() == ["2025-01-10Status: referred", "2025-02Status: active"]
    assert status.nth(1).locator("time").get_attribute("title") == "written as 2025-02, read as 2025-02-28"


def _followed_up_in_july(served: tuple[str, World], page: Any, tmp_path: Path) -> str:
    """``FOLLOWED`` imported as the hospital wrote it (its follow-up due in July) and a supervisor signed in."""
    base, world = served
    _import_as_a_hospital_wrote_it(world, FOLLOWED, due_in_july, tmp_path)
    sign_in(page, base, world.supervisor)
    return base


def test_a_follow_up_due_in_a_month_reads_as_that_month_on_the_caseload(
    served: tuple[str, World], page: Any, tmp_path: Path
) -> None:
    """The caseload said "1 overdue (next 2025-07-31)" where the hospital wrote the follow-up as due in July."""
    _followed_up_in_july(served, page, tmp_path)
    row = page.locator("tr").filter(has=page.get_by_role("link", name=FOLLOWED.id, exact=True))
    assert row.locator("td").nth(3).inner_text() == "1 overdue (next 2025-07)"
    assert row.locator("time").get_attribute("title") == "written as 2025-07, read as 2025-07-31"


def test_a_follow_up_due_in_a_month_reads_as_that_month_in_the_transitions(
    served: tuple[str, World], page: Any, tmp_path: Path
) -> None:
    """The case's transitions and journey said "follow-up due 2025-07-31" where the hospital wrote July."""
    base = _followed_up_in_july(served, page, tmp_path)
    page.goto(f"{base}/console/#case/{FOLLOWED.id}")
    page.get_by_role("heading", name=f"Case {FOLLOWED.id}").wait_for()
    moves = page.get_by_role("table", name="Transitions between care settings").locator("tbody tr")
    assert moves.all_inner_texts() == ["2025-06-20\tacute hospital\thome\thome\t2025-07\t"]
    assert moves.locator("time").get_attribute("title") == "written as 2025-07, read as 2025-07-31"
    moved = page.locator(".timeline li").filter(has_text="Transition:")
    assert moved.all_inner_texts() == ["2025-06-20Transition: acute hospital → home · follow-up due 2025-07"]
    assert "2025-07-31" not in page.locator("#view").inner_text()
