"""The console's sync page shows a supervisor what pulls set aside (which, from where, why; not the
resource itself) and dismisses an entry; before, it showed only how many there were."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from typing import Any

import pytest

from fhir_cm.store import ApiRole, add_quarantine, clear_quarantine, create_api_key, list_quarantine, open_store
from tests.api_process import ApiProcess
from tests.console.test_console_browser import HOSTILE, _require_chromium, browser, page, sign_in

__all__ = ["browser", "page"]  # the browser fixtures, used here on this module's store

SERVER = "http://hospital.example/fhir"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str, str, list[int]]]:
    """A served store holding two quarantined Goals (one with a hostile reason); a supervisor's key."""
    _require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('console-quarantine') / 'console.db'}"
    now = dt.datetime.now(dt.UTC)
    with open_store(url) as store, store.session() as s:
        ids = [
            add_quarantine(
                s,
                source=SERVER,
                raw={"resourceType": "Goal", "id": f"g{n}", "meta": {"versionId": "2"}, "note": [{"text": "Jane Roe"}]},
                reason=f"lifecycleStatus has no counterpart {HOSTILE if n else ''}",
                now=now + dt.timedelta(seconds=n),
            ).id
            for n in range(2)
        ]
        _, key = create_api_key(s, name="Supervisor", role=ApiRole.SUPERVISOR)
    api = ApiProcess(url)
    api.start()
    try:
        yield api.base, key, url, ids
    finally:
        api.stop()


def test_a_supervisor_sees_the_quarantine_and_dismisses_an_entry(
    served: tuple[str, str, str, list[int]], page: Any
) -> None:
    base, key, url, (first, second) = served
    sign_in(page, base, key)
    page.get_by_role("link", name="Sync health").click()
    page.get_by_role("heading", name="Quarantine (2)").wait_for()
    rows = page.get_by_role("table", name="Quarantine").locator("tbody tr")
    assert [r.locator("td").nth(1).inner_text() for r in rows.all()] == ["Goal/g1", "Goal/g0"]
    assert HOSTILE in rows.first.inner_text()  # a reason is shown as text, never as markup
    assert page.evaluate("window.__xss") is None
    assert "Jane Roe" not in page.content()  # the resource itself is not shown

    page.get_by_role("button", name=f"Dismiss (entry {first})").click()
    page.get_by_role("status").filter(has_text=f"Quarantine entry {first} dismissed").wait_for()
    page.get_by_role("heading", name="Quarantine (1)").wait_for()
    assert page.get_by_role("button", name=f"Dismiss (entry {first})").count() == 0
    with open_store(url) as store, store.session(read_only=True) as s:
        assert [q.id for q in list_quarantine(s)] == [second]


def test_an_entry_a_pull_cleared_meanwhile_is_said_over_the_quarantine_as_it_stands(
    served: tuple[str, str, str, list[int]], page: Any
) -> None:
    base, key, url, _ = served
    with open_store(url) as store, store.session() as s:
        entry = add_quarantine(
            s, source=SERVER, raw={"resourceType": "Goal", "id": "g9"}, reason="no subject", now=dt.datetime.now(dt.UTC)
        ).id
    sign_in(page, base, key)
    page.get_by_role("link", name="Sync health").click()
    dismiss = page.get_by_role("button", name=f"Dismiss (entry {entry})")
    dismiss.wait_for()
    # A pull takes in a good copy of the resource while this page still shows the entry: it is cleared.
    with open_store(url) as store, store.session() as s:
        assert clear_quarantine(s, SERVER, [("Goal", "g9")]) == 1
    dismiss.click()
    alert = page.get_by_role("alert").filter(has_text=f"Quarantine entry {entry} was not dismissed")
    alert.wait_for()
    assert alert.inner_text() == f"Quarantine entry {entry} was not dismissed: no quarantine entry {entry}"
    assert page.get_by_role("heading", name="Sync health").count() == 1
    assert page.get_by_role("button", name=f"Dismiss (entry {entry})").count() == 0
