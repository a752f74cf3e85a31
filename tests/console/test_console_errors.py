"""The console when an answer is not the one hoped for: a key refused since it was kept, a network
gone. Each is said on the page, in words a case manager can act on, and the page stays usable."""

from __future__ import annotations

from typing import Any

from tests.console.test_console_browser import World, browser, page, served, sign_in

__all__ = ["browser", "page", "served"]  # the browser fixtures, on a store of this module's own

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
