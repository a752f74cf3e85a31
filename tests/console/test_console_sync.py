"""The console's sync page when more pushes failed than the API lists (the newest 50): it says how
many there are in all, as it does for the quarantine, rather than a table that reads as the whole."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_cm.store import claim_outbox, mark_push_failed, open_store, save_case
from fhir_cm.synthetic import generate_cases
from tests.console.test_console_browser import World, browser, page, served, sign_in

__all__ = ["browser", "page", "served"]  # the browser fixtures, on a store of this module's own


def test_more_failed_pushes_than_listed_are_counted(served: tuple[str, World], page: Any) -> None:
    base, world = served
    known = {c.id for c in world.cases}
    cases = [c for c in generate_cases(60, seed=23, today=dt.date.today()) if c.id not in known][:55]
    with open_store(world.url) as store, store.session() as s:
        for case in cases:
            save_case(s, case)
        for item in claim_outbox(s, "console-test", limit=len(cases)):
            mark_push_failed(s, item, "HTTP 422 from the server: Encounter.status is required", retry=False)
    sign_in(page, base, world.supervisor)
    page.get_by_role("link", name="Sync health").click()
    failed = page.get_by_role("table", name="Failed pushes").locator("tbody tr")
    failed.first.wait_for()
    assert failed.count() == 50
    assert page.get_by_text(f"The newest 50 of {len(cases)} are shown.").count() == 1
