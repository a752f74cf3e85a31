"""The console when an answer is not the one hoped for: a key refused since it was kept, a network
gone, a conflict settled elsewhere before the click, a server's failure. Each is said on the page, in words a case manager can act on, and the page stays usable."""

from __future__ import annotations

import json
from typing import Any

import httpx

from fhir_cm.store import ConflictStatus, Resolution, list_conflicts, open_store
from tests.console.test_console_browser import World, browser, page, playwright_sync, served, sign_in

__all__ = ["browser", "page", "served"]  # the browser fixtures, on a store of this module's own

expect = playwright_sync.expect
UNREACHABLE = "The fhir-cm server cannot be reached: check the connection, then try again."


def test_a_kept_key_refused_on_reload_is_said_not_a_silent_sign_in(served: tuple[str, World], page: Any) -> None:
    base, _ = served
    page.goto(f"{base}/console/")
    page.get_by_role("heading", name="Sign in").wait_for()
    # The tab kept a key that has been revoked since (or never was one): the page is reloaded.
    page.evaluate("() => sessionStorage.setItem('fhir-cm-api-key', 'fcm_0000000000000000_revoked')")
    page.reload()
    page.get_by_role("alert").filter(has_text="The key was refused").wait_for()
    assert page.locator("#nav").is_hidden()
    assert page.evaluate("() => Object.keys(sessionStorage)") == []


def test_a_network_gone_is_said_in_words(served: tuple[str, World], page: Any) -> None:
    base, world = served
    sign_in(page, base, world.supervisor)
    page.route("**/api/v1/caseload*", lambda route: route.abort("internetdisconnected"))
    page.get_by_role("link", name="Sync health").click()
    page.get_by_role("heading", name="Sync health").wait_for()
    page.get_by_role("link", name="Caseload").click()
    page.get_by_role("heading", name="No connection").wait_for()
    assert page.get_by_role("alert").inner_text() == UNREACHABLE

    # Signing in while the server cannot be reached says the same, not the browser's "Failed to fetch".
    page.route("**/api/v1/me", lambda route: route.abort("internetdisconnected"))
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("API key").fill(world.supervisor)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text=UNREACHABLE).wait_for()


def test_a_conflict_settled_elsewhere_is_said_over_the_conflicts_as_they_stand(
    served: tuple[str, World], page: Any
) -> None:
    base, world = served
    sign_in(page, base, world.supervisor)
    page.get_by_role("link", name="Sync health").click()
    keep_ours = page.get_by_role("button", name=f"Keep ours (conflict {world.conflict_id})")
    keep_ours.wait_for()
    # Someone else settles it (another tab, the CLI) while this page still shows it.
    settled = httpx.post(
        f"{base}/api/v1/sync/conflicts/{world.conflict_id}/resolve",
        headers={"X-API-Key": world.supervisor},
        json={"resolution": "server"},
        timeout=30,
    )
    assert settled.status_code == 200, settled.text
    keep_ours.click()
    alert = page.get_by_role("alert").filter(has_text=f"Conflict {world.conflict_id} was not settled")
    alert.wait_for()
    assert alert.inner_text() == f"Conflict {world.conflict_id} was not settled: no open conflict {world.conflict_id}"
    # The sync page stays, with the conflicts as they now are: the settled one is gone from it.
    assert page.get_by_role("heading", name="Sync health").count() == 1
    assert page.get_by_role("heading", name="Conflicts (0)").count() == 1
    with open_store(world.url) as store, store.session(read_only=True) as s:
        (conflict,) = list_conflicts(s, case_id=world.journey.id, status=None)
    assert (conflict.status, conflict.resolution) == (ConflictStatus.RESOLVED, Resolution.SERVER)


def test_an_address_that_is_not_one_says_not_found(served: tuple[str, World], page: Any) -> None:
    # A link cut short or typed by hand: "%" begins an escape that is not there.
    base, world = served
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/%")
    page.get_by_role("heading", name="Not found").wait_for()
    assert page.get_by_role("alert").inner_text() == "There is no page at this address: #case/%"


def test_a_server_failure_is_said_in_words_with_the_request_id_to_quote(
    served: tuple[str, World], browser: Any
) -> None:
    """A 500 read 'Something went wrong: an unexpected error occurred; the request id identifies it in the
    logs' with no request id anywhere; a gateway's 502 over HTTP/2 (no reason phrase) read 'HTTP 502'."""
    base, world = served
    # Its own page: the browser reports each 5xx as a console error, which the shared page fixture fails on.
    context = browser.new_context()
    try:
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        sign_in(page, base, world.supervisor)
        internal = {  # the API's answer to an error it did not expect (api._problems)
            "type": "urn:fhir-cm:problem:internal-error",
            "title": "Internal error",
            "status": 500,
            "detail": "an unexpected error occurred; the request id identifies it in the logs",
            "instance": "/api/v1/sync/conflicts",
            "errors": [],
            "request_id": "4f1c0ffee",
        }
        page.route(
            "**/api/v1/sync/conflicts*",
            lambda route: route.fulfill(status=500, content_type="application/problem+json", body=json.dumps(internal)),
        )
        page.get_by_role("link", name="Sync health").click()
        page.get_by_role("heading", name="The server had a problem").wait_for()
        assert page.get_by_role("alert").inner_text() == (
            "The fhir-cm server could not do this: an unexpected error occurred; the request id identifies it"
            " in the logs. Request id: 4f1c0ffee."
        )

        page.route(
            "**/api/v1/caseload*",
            lambda route: route.fulfill(
                status=502, headers={"content-type": "text/html"}, body="<html>bad gateway</html>"
            ),
        )
        page.get_by_role("link", name="Caseload").click()
        # The heading is the same as the last page's: the alert's words tell the caseload's answer came.
        expect(page.get_by_role("alert")).to_have_text(
            "The fhir-cm server is not answering just now (HTTP 502): try again in a moment."
        )
        assert page.get_by_role("heading", name="The server had a problem").count() == 1
        assert errors == []
    finally:
        context.close()


def test_a_facade_that_fails_leaves_the_case_readable(served: tuple[str, World], browser: Any) -> None:
    """The case's page waited for every page of its FHIR resources, and a façade that failed replaced the
    whole case (its goals, referrals, journey) with an error page."""
    base, world = served
    context = browser.new_context()
    try:
        page = context.new_page()
        sign_in(page, base, world.supervisor)
        failed = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "exception", "diagnostics": "the store is unavailable or busy; try again"}
            ],
        }
        page.route(
            "**/fhir/Goal?*",
            lambda route: route.fulfill(status=503, content_type="application/fhir+json", body=json.dumps(failed)),
        )
        page.goto(f"{base}/console/#case/{world.journey.id}")
        page.get_by_role("heading", name=f"Case {world.journey.id}").wait_for()
        expect(page.get_by_role("alert")).to_have_text(
            "The FHIR resources could not be listed: The fhir-cm server could not do this: the store is unavailable"
            " or busy; try again."
        )
        goals = page.get_by_role("table", name="Goals").locator("tbody tr")
        assert goals.count() == len(world.journey.goals)
        assert page.locator(".timeline li").count() > 0
    finally:
        context.close()
