"""A case's FHIR resources on the console are every one the façade serves for its patient, over all the
search's pages: the façade pages by 20, and a case followed for months has more contacts than that."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_cm.domain import Case
from fhir_cm.store import open_store, save_case
from tests.console.test_console_browser import World, browser, page, served, sign_in

__all__ = ["browser", "page", "served"]  # the browser fixtures, on a store of this module's own


def test_every_page_of_a_patients_resources_is_listed(served: tuple[str, World], page: Any) -> None:
    base, world = served
    start = dt.date(2026, 1, 5)
    contacts = [{"date": start + dt.timedelta(days=7 * n), "mode": "phone"} for n in range(25)]
    case = Case(
        id="case-followed-long",
        programme="health-care",
        status="closed",  # off the caseload the other tests read
        period={"start": start, "end": start + dt.timedelta(days=200)},
        patient={"kind": "patient", "id": "pat-followed-long"},
        contacts=contacts,
    )
    with open_store(world.url) as store, store.session() as s:
        save_case(s, case, enqueue=False)
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{case.id}")
    page.get_by_role("heading", name=f"Case {case.id}").wait_for()
    listed = page.get_by_role("list", name="FHIR resources of this patient").locator("button")
    listed.first.wait_for()
    shown = listed.all_inner_texts()
    assert sorted(t for t in shown if t.startswith("Communication/")) == sorted(
        f"Communication/{k.id}" for k in case.contacts
    )
    assert len(shown) == len(set(shown))
