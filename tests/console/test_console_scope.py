"""The console shaped by the key's scope, as ``/api/v1/me`` tells it: a supervisor of one programme is
offered only that programme, and a service key (the FHIR façade's, not a person's) is told at sign-in
that the console is not for it, rather than signed in to views that all answer "Not allowed"."""

from __future__ import annotations

from typing import Any

from fhir_cm.domain import ProgrammeType
from fhir_cm.store import ApiRole, create_api_key, open_store
from tests.console.test_console_browser import World, browser, page, served, sign_in

__all__ = ["browser", "page", "served"]  # the browser fixtures, on a store of this module's own


def test_a_supervisor_of_one_programme_is_offered_only_that_programme(served: tuple[str, World], page: Any) -> None:
    base, world = served
    with open_store(world.url) as store, store.session() as s:
        _, key = create_api_key(
            s, name="Rehabilitation lead", role=ApiRole.SUPERVISOR, programme=ProgrammeType.REHABILITATION
        )
    sign_in(page, base, key)
    page.get_by_role("link", name="Outcomes").click()
    page.get_by_role("heading", name="Outcomes").wait_for()
    programme = page.get_by_label("Programme")
    assert programme.locator("option").all_inner_texts() == ["rehabilitation"]
    page.get_by_role("button", name="Show").click()
    page.locator("figure.chart").first.wait_for()
    assert page.get_by_role("alert").count() == 0
    assert page.locator("table").last.locator("tbody tr").all_inner_texts()[0].startswith("rehabilitation")


def test_a_service_key_is_told_the_console_is_not_for_it(served: tuple[str, World], page: Any) -> None:
    base, world = served
    with open_store(world.url) as store, store.session() as s:
        _, key = create_api_key(s, name="Hospital EHR", role=ApiRole.SERVICE)
    page.goto(f"{base}/console/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    alert = page.get_by_role("alert").filter(has_text="service key")
    alert.wait_for()
    assert alert.inner_text() == (
        "This is a service key: it reads the FHIR façade (/fhir) for another system, and the console is not "
        "for it. Sign in with a supervisor's or a case manager's key."
    )
    assert page.locator("#nav").is_hidden()
    assert page.locator("#view").inner_text() == ""
    assert page.evaluate("() => Object.keys(sessionStorage)") == []
