"""The console on a store holding a case this version's model cannot read (stored before a rule of it):
the caseload and outcomes show the others and say that one is left out, naming `fhir-cm check`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from fhir_cm.store import ApiRole, create_api_key, open_store, save_case
from fhir_cm.synthetic import generate_cases
from tests.api_process import ApiProcess
from tests.console.test_console_browser import _require_chromium, browser, page, sign_in
from tests.unreadable import make_unreadable

__all__ = ["browser", "page"]  # the browser fixtures, used here on this module's store


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, list[str]]]:
    """A served store of one case manager's open cases, the first made unreadable; the manager's key."""
    _require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('console-unreadable') / 'console.db'}"
    cases = [c for c in generate_cases(40, seed=3, today=dt.date.today()) if c.is_open and c.case_manager]
    manager = cases[0].case_manager.id if cases[0].case_manager else ""
    mine = sorted(c.id for c in cases if c.case_manager and c.case_manager.id == manager)
    with open_store(url) as store:
        with store.session() as s:
            for case in cases:
                save_case(s, case, enqueue=False)
            _, key = create_api_key(s, name="Case manager", role=ApiRole.CASE_MANAGER, practitioner_id=manager)
        make_unreadable(store, mine[0])
    api = ApiProcess(url)
    api.start()
    try:
        yield api.base, key, mine
    finally:
        api.stop()


def test_the_caseload_and_outcomes_say_a_case_is_left_out(served: tuple[str, str, list[str]], page: Any) -> None:
    base, key, mine = served
    sign_in(page, base, key)

    shown = {link.inner_text() for link in page.locator("article.card table a").all()}
    assert shown == set(mine[1:])
    note = page.get_by_role("status").filter(has_text="1 stored case this version cannot read is left out")
    assert "fhir-cm check" in note.inner_text()

    page.get_by_role("link", name="Outcomes").click()
    page.get_by_role("heading", name="Outcomes").wait_for()
    page.get_by_role("status").filter(has_text="1 stored case this version cannot read is left out").wait_for()
