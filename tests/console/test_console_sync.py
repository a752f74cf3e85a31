"""The console's sync page when more pushes failed than the API lists (the newest 50): it says how
many there are in all, as it does for the quarantine, rather than a table that reads as the whole; and
its times (a push failed, an entry set aside, a notification) are the reader's own clock, not UTC's, with its zone."""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

from fhir_cm.store import (
    HeldSubscription,
    add_quarantine,
    claim_outbox,
    mark_push_failed,
    open_store,
    put_subscription,
    save_case,
    secret_hash,
)
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


def test_sync_times_are_the_readers_own_clock(served: tuple[str, World], browser: Any) -> None:
    """The other times of the console are the reader's days; these were UTC's raw stamps
    (2026-06-14T20:00:00Z where it is 08:00 on 15 June in Auckland)."""
    base, world = served
    # Later than anything else in the store, so each is among the newest listed.
    soon = (dt.datetime.now(dt.UTC) + dt.timedelta(days=1)).replace(second=0, microsecond=0)
    failed_at, set_aside, notified = soon, soon + dt.timedelta(minutes=5), soon + dt.timedelta(minutes=10)
    (case,) = [
        c for c in generate_cases(80, seed=31, today=dt.date.today()) if c.id not in {w.id for w in world.cases}
    ][:1]
    with open_store(world.url) as store, store.session() as s:
        save_case(s, case)
        (item,) = claim_outbox(s, "console-test", limit=1, now=failed_at)
        mark_push_failed(s, item, "HTTP 412 from the server", retry=False, now=failed_at)
        add_quarantine(
            s,
            source="https://ehr.example/fhir",
            raw={"resourceType": "Goal", "id": "g-clock"},
            reason="no subject",
            now=set_aside,
        )
        put_subscription(
            s,
            HeldSubscription(
                id="sub-clock",
                server_base="https://ehr.example/fhir",
                server_id="42",
                kind="criteria",
                endpoint="https://cm.example/notifications",
                criteria="Encounter?patient=…",
                patients=[case.patient.id],
                secret_hash=secret_hash("not shown"),
                status="active",
                last_notified_at=notified,
                created_at=failed_at,
            ),
        )
    auckland = ZoneInfo("Pacific/Auckland")

    def local(instant: dt.datetime) -> str:
        """The reader's time with its zone (a time alone read as UTC's, or the server's, to anyone shown it)."""
        there = instant.astimezone(auckland)
        hours, rest = divmod(int(there.utcoffset().total_seconds()) // 60, 60)  # type: ignore[union-attr]
        return there.strftime("%Y-%m-%d %H:%M") + f" UTC+{hours}" + (f":{rest:02d}" if rest else "")

    context = browser.new_context(viewport={"width": 1366, "height": 900}, timezone_id="Pacific/Auckland")
    try:
        page = context.new_page()
        sign_in(page, base, world.supervisor)
        page.get_by_role("link", name="Sync health").click()
        failed = page.get_by_role("table", name="Failed pushes").locator("tbody tr").filter(has_text=case.id)
        failed.wait_for()
        assert failed.locator("td").last.inner_text() == local(failed_at)
        entry = page.get_by_role("table", name="Quarantine").locator("tbody tr").filter(has_text="Goal/g-clock")
        assert entry.locator("td").nth(5).inner_text() == local(set_aside)
        assert entry.locator("td").nth(6).inner_text() == local(set_aside)
        subscription = page.get_by_role("table", name="Subscriptions").locator("tbody tr").filter(has_text="sub-clock")
        assert subscription.locator("td").last.inner_text() == local(notified)
    finally:
        context.close()
