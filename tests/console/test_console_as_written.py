"""Dates a hospital wrote as a month, shown as that month where the console showed the day they are read as:
a case's care-team memberships and the status changes of its journey."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api.test_dates_as_written import TEAMED, team_as_a_hospital_wrote_it
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
