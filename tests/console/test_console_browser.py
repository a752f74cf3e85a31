"""The console end to end: `fhir-cm serve` in its own process, Debian's Chromium driven by Playwright.

A person signs in with a key, reads the caseload, opens a case and its transitions, looks at the
outcomes and sync health, and settles a conflict, which leaves the list and is applied in the store;
a case manager cannot open another's case. Each page is saved as a screenshot under
``docs/console/`` (the README shows them).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.interchange import import_files
from fhir_cm.mapping import case_to_bundle
from fhir_cm.store import (
    ApiRole,
    HeldSubscription,
    ConflictStatus,
    add_quarantine,
    Resolution,
    create_api_key,
    get_case,
    list_conflicts,
    open_store,
    put_subscription,
    save_case,
    secret_hash,
)
from fhir_cm.synthetic import generate_cases
from fhir_cm.sync import merge_case
from fhir_cm.sync._conflicts import record_clashes
from tests.api_process import ApiProcess

CHROMIUM = os.environ.get("FHIR_CM_CHROMIUM", "/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "docs" / "console"
STARTUP_SECONDS = 60
#: Markup where a source outside (a FHIR server, an import) could put it: it must stay text.
HOSTILE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>"\'>'
#: A text with no place to break a line (a pasted link).
UNBROKEN = "https://example.org/" + "a" * 600

playwright_sync = pytest.importorskip("playwright.sync_api")


def _require_chromium() -> None:
    if shutil.which(CHROMIUM) is None and not Path(CHROMIUM).exists():
        message = f"no Chromium at {CHROMIUM} (Debian: apt-get install chromium; .ci/run installs it)"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)


def _from_outside(case: Case) -> Case:
    """The case as a hostile or careless source could send it: markup in the patient's name and a referral,
    a goal that is one unbroken line."""
    data = case.model_dump()
    data["goals"][0]["description"] = UNBROKEN
    data["patient"]["name"] = f"Zoë {HOSTILE}"
    data["referrals"][0]["service"] = f"home care {HOSTILE}"
    return Case.model_validate(data)


class World:
    """The seeded store and the keys of three people."""

    def __init__(self, url: str) -> None:
        self.url = url
        today = dt.date.today()
        cases = list(generate_cases(24, seed=7, today=today))
        # A closed case (off the caseload, so out of the screenshots), its texts from outside.
        closed = next(c for c in cases if not c.is_open and c.goals and c.referrals and c.stays)
        self.outside = _from_outside(closed)
        cases = [self.outside if c.id == closed.id else c for c in cases]
        with open_store(url) as store, store.session() as s:
            for case in cases:
                save_case(s, case, enqueue=False)
            _, self.supervisor = create_api_key(s, name="Supervisor", role=ApiRole.SUPERVISOR)
            managers = sorted({c.case_manager.id for c in cases if c.case_manager is not None and c.is_open})
            self.manager = managers[0]
            _, self.cm_key = create_api_key(
                s, name="Case manager", role=ApiRole.CASE_MANAGER, practitioner_id=self.manager
            )
        self.cases = cases
        # A case with a journey: several stays, open, managed by someone else than self.manager, with goals.
        self.journey = max((c for c in cases if c.is_open and c.goals), key=lambda c: len(c.stays))
        self.others = [
            c
            for c in cases
            if c.is_open
            and c.case_manager is not None
            and c.case_manager.id != self.manager
            and not any(m.party.id == self.manager for m in c.team)
        ]
        self.conflict_id = self._clash(self.journey)
        with open_store(url) as store, store.session() as s:
            put_subscription(
                s,
                HeldSubscription(
                    id="sub-console",
                    server_base="https://ehr.example/fhir",
                    server_id="41",
                    kind="criteria",
                    endpoint="https://cm.example/notifications",
                    criteria="Encounter?patient=…",
                    patients=[c.patient.id for c in cases[:3]],
                    secret_hash=secret_hash("not shown"),
                    status="active",
                    last_notified_at=dt.datetime.now(dt.UTC),
                    created_at=dt.datetime.now(dt.UTC),
                ),
            )

    def _clash(self, base: Case) -> int:
        """Both sides changed the first goal's achievement: a real clash, stored as a pull stores it."""
        goal = base.goals[0]

        def with_goal(achievement: str) -> Case:
            goals = [
                {**g.model_dump(), "achievement": achievement} if g.id == goal.id else g.model_dump()
                for g in base.goals
            ]
            return Case.model_validate({**base.model_dump(), "goals": goals})

        self.local_achievement = "improving" if goal.achievement != "improving" else "worsening"
        local = with_goal(self.local_achievement)
        server = with_goal("no-progress" if goal.achievement != "no-progress" else "achieved")
        outcome = merge_case(base, local, server)
        with open_store(self.url) as store, store.session() as s:
            save_case(s, outcome.case, enqueue=False)
            (conflict_id,) = record_clashes(s, base.id, outcome.clashes)
        return conflict_id


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, World]]:
    _require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp('console') / 'console.db'}"
    world = World(url)
    api = ApiProcess(url)
    api.start()
    try:
        yield api.base, world
    finally:
        api.stop()


@pytest.fixture(scope="module")
def browser(served: Any) -> Iterator[Any]:
    with playwright_sync.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        yield launched
        launched.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context(viewport={"width": 1366, "height": 900})
    opened = context.new_page()
    errors: list[str] = []
    opened.on("pageerror", lambda exc: errors.append(str(exc)))
    # A refused key (401), a case hidden from the caller (404), a request refused as invalid (422) or a
    # network a test cut is an answer the page shows; anything else the browser reports (a script error,
    # a 5xx, a blocked resource) fails the test.
    expected = re.compile(
        r"^Failed to load resource: (the server responded with a status of (40[134]|422)|net::ERR_INTERNET_DISCONNECTED)"
    )
    opened.on(
        "console", lambda msg: errors.append(msg.text) if msg.type == "error" and not expected.match(msg.text) else None
    )
    yield opened
    context.close()
    assert errors == [], f"the page reported errors: {errors}"


def sign_in(page: Any, base: str, key: str) -> None:
    page.goto(f"{base}/console")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("heading", name=re.compile(r"^Caseload on ")).wait_for()


def shot(page: Any, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_nothing_without_a_key_and_a_wrong_key_is_refused(served: tuple[str, World], page: Any) -> None:
    base, _ = served
    page.goto(f"{base}/console/")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.locator("#nav").is_hidden()
    page.get_by_label("API key").fill("fcm_0000000000000000_not-a-key")
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="not valid").wait_for()
    assert page.locator("#view").inner_text() == ""
    shot(page, "sign-in")


def test_a_supervisor_reads_caseload_case_outcomes_and_settles_a_conflict(served: tuple[str, World], page: Any) -> None:
    base, world = served
    sign_in(page, base, world.supervisor)
    caseload = httpx.get(f"{base}/api/v1/caseload", headers={"X-API-Key": world.supervisor}, timeout=30).json()
    expected = sorted(m["case_manager_name"] or m["case_manager"] or "Not assigned" for m in caseload["managers"])
    assert sorted(page.locator("article.card h2").all_inner_texts()) == expected and expected
    assert page.get_by_text(re.compile(r"open of 20")).count() == len(expected)
    shot(page, "caseload")

    page.get_by_role("link", name=world.journey.id).first.click()
    page.get_by_role("heading", name=f"Case {world.journey.id}").wait_for()
    transitions = world.journey.transitions
    rows = page.locator("table").filter(has=page.get_by_role("columnheader", name="Disposition")).locator("tbody tr")
    assert rows.count() == max(len(transitions), 1)
    if any(t.readmission for t in transitions):
        assert page.locator(".tag.readmission").count() >= 1
    assert page.locator("svg.lanes rect").count() == len(world.journey.stays)
    handoffs = [
        t for t in transitions if t.from_setting in ("acute-hospital", "skilled-nursing", "inpatient-rehabilitation")
    ]
    assert page.locator("button", has_text="Transfer summary").count() == len(handoffs) and handoffs
    page.locator("button", has_text="Transfer summary 1:").click()
    page.locator("#resource-json").filter(has_text='"code": "18761-7"').wait_for()
    page.get_by_role("button", name="Close").click()
    page.locator("button", has_text="EpisodeOfCare/").first.click()
    page.locator("#resource-json").filter(has_text='"resourceType": "EpisodeOfCare"').wait_for()
    page.get_by_role("button", name="Close").click()
    shot(page, "case")

    page.get_by_role("link", name="Outcomes").click()
    page.get_by_role("heading", name="Outcomes").wait_for()
    page.locator("canvas").first.wait_for()
    assert page.evaluate("() => window.Chart !== undefined")
    assert page.locator("figure.chart").count() >= 3
    shot(page, "outcomes")
    page.get_by_label("Programme").select_option("health-care")
    page.get_by_role("button", name="Show").click()
    playwright_sync.expect(page.locator("table").last.locator("tbody tr")).to_have_count(1)
    assert page.locator("table").last.locator("tbody tr").first.inner_text().startswith("health care")

    page.get_by_role("link", name="Sync health").click()
    keep_ours = page.get_by_role("button", name=f"Keep ours (conflict {world.conflict_id})")
    keep_ours.wait_for()
    assert page.get_by_role("heading", name="Base (last agreed)").count() == 1
    subscriptions = page.locator("table").filter(has=page.get_by_role("columnheader", name="Last notification"))
    assert subscriptions.locator("tbody tr").all_inner_texts()[0].split("\t")[:5] == [
        "sub-console",
        "https://ehr.example/fhir",
        "criteria",
        "active",
        "3",
    ]
    shot(page, "sync")
    keep_ours.click()
    page.get_by_role("status").filter(has_text=f"Conflict {world.conflict_id} settled").wait_for()
    assert page.get_by_role("button", name=f"Keep ours (conflict {world.conflict_id})").count() == 0

    with open_store(world.url) as store, store.session(read_only=True) as s:
        settled = list_conflicts(s, case_id=world.journey.id, status=None)
        case = get_case(s, world.journey.id)
    assert [(c.id, c.status, c.resolution) for c in settled] == [
        (world.conflict_id, ConflictStatus.RESOLVED, Resolution.LOCAL)
    ]
    assert case is not None and case.goals[0].achievement == world.local_achievement


def test_a_case_manager_sees_only_their_own_cases(served: tuple[str, World], page: Any) -> None:
    base, world = served
    sign_in(page, base, world.cm_key)
    own = {c.id for c in world.cases if c.is_open and c.case_manager is not None and c.case_manager.id == world.manager}
    shown = {link.inner_text() for link in page.locator("article.card table a").all()}
    assert shown == own
    # No programme filter for a case manager: nothing in its place (it was written as "null").
    assert "null" not in page.locator("#view").inner_text().splitlines()
    other = world.others[0].id
    page.goto(f"{base}/console/#case/{other}")
    page.get_by_role("alert").wait_for()
    assert page.get_by_role("alert").inner_text() == f"no case {other}"
    assert page.get_by_role("heading", name="Not found").count() == 1
    assert page.get_by_role("heading", name=f"Case {other}").count() == 0


def test_a_case_names_its_people_and_text_from_outside_stays_text(served: tuple[str, World], page: Any) -> None:
    base, world = served
    sign_in(page, base, world.supervisor)
    journey = world.journey
    assert journey.case_manager is not None and journey.referral_source is not None
    page.goto(f"{base}/console/#case/{journey.id}")
    page.get_by_role("heading", name=f"Case {journey.id}").wait_for()
    summary = page.locator("#view > p").first.inner_text()
    assert f"case manager {journey.case_manager.name}" in summary and f"patient {journey.patient.name}" in summary
    assert page.locator(".timeline").get_by_text(f"referred by {journey.referral_source.name}").count() == 1

    outside = world.outside
    page.goto(f"{base}/console/#case/{outside.id}")
    page.get_by_role("heading", name=f"Case {outside.id}").wait_for()
    assert f"patient Zoë {HOSTILE} · since" in page.locator("#view > p").first.inner_text()
    assert page.get_by_role("cell", name=f"home care {HOSTILE}", exact=True).count() == 1
    assert page.locator("#view img, #view script").count() == 0
    assert page.evaluate("() => window.__xss") is None


def _overflow(page: Any) -> list[str]:
    """What sticks out of the page's width or out of its card (empty when everything fits)."""
    return list(
        page.evaluate(
            """() => {
              const out = [];
              const root = document.documentElement;
              if (root.scrollWidth > root.clientWidth) out.push(`page ${root.scrollWidth} > ${root.clientWidth}`);
              for (const card of document.querySelectorAll("article.card")) {
                const edge = card.getBoundingClientRect().right;
                for (const el of card.querySelectorAll("*")) {
                  const right = el.getBoundingClientRect().right;
                  if (right > edge + 1) { out.push(`${card.querySelector("h2, h3").textContent}: ${el.tagName} ${right} > ${edge}`); break; }
                }
              }
              return out;
            }"""
        )
    )


def test_long_ids_and_unbroken_texts_stay_inside_cards_and_the_page(served: tuple[str, World], page: Any) -> None:
    base, world = served
    sign_in(page, base, world.supervisor)
    assert _overflow(page) == []
    page.goto(f"{base}/console/#case/{world.outside.id}")
    page.get_by_role("heading", name=f"Case {world.outside.id}").wait_for()
    assert page.get_by_role("cell", name=UNBROKEN).count() == 1
    assert _overflow(page) == []


def test_a_resource_that_cannot_be_read_says_why(served: tuple[str, World], page: Any) -> None:
    base, world = served
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{world.journey.id}")
    gone = '{"resourceType": "OperationOutcome", "issue": [{"severity": "error", "code": "not-found", "diagnostics": "gone"}]}'
    page.route(
        "**/fhir/EpisodeOfCare/*",
        lambda route: route.fulfill(status=404, content_type="application/fhir+json", body=gone),
    )
    page.locator("button", has_text="EpisodeOfCare/").first.click()
    page.get_by_role("heading", name="Not found").wait_for()
    assert page.get_by_role("alert").inner_text() == "gone"


def test_outcomes_of_a_period_that_ends_before_it_starts_say_so_and_keep_the_form(
    served: tuple[str, World], page: Any
) -> None:
    base, world = served
    sign_in(page, base, world.supervisor)
    page.get_by_role("link", name="Outcomes").click()
    page.get_by_role("heading", name="Outcomes").wait_for()
    page.get_by_label("From", exact=True).fill("2025-06-01")
    page.get_by_label("To", exact=True).fill("2025-01-01")
    page.get_by_role("button", name="Show").click()
    page.get_by_role("alert").wait_for()
    assert page.get_by_role("alert").inner_text().startswith("to: the period ends")
    # The period is kept for the session: coming back shows the form again, so it can be put right.
    page.get_by_role("link", name="Caseload").click()
    page.get_by_role("heading", name=re.compile(r"^Caseload on ")).wait_for()
    page.get_by_role("link", name="Outcomes").click()
    page.get_by_role("alert").wait_for()
    page.get_by_label("To", exact=True).fill("2025-12-31")
    page.get_by_role("button", name="Show").click()
    page.locator("figure.chart").first.wait_for()
    assert page.get_by_role("alert").count() == 0


def _hold(page: Any, pattern: str) -> list[Any]:
    """Holds back the requests ``pattern`` matches, from now on; they are added to the list returned."""
    held: list[Any] = []
    page.route(pattern, lambda route: held.append(route))
    return held


def _release(page: Any, pattern: str, held: list[Any], count: int) -> None:
    """Waits for ``count`` held requests, then lets them through (those the page gave up on are gone)
    and waits for the page's requests to settle."""
    for _ in range(1500):  # polled, up to 30 s: the page's own requests reach the route in their time
        if len(held) >= count:
            break
        page.wait_for_timeout(20)
    assert len(held) >= count, f"{len(held)} of {count} requests to {pattern} were made"
    page.unroute(pattern)
    for route in held:
        with contextlib.suppress(playwright_sync.Error):
            route.continue_()
    page.wait_for_load_state("networkidle")


def test_a_late_answer_never_replaces_the_view_moved_on_to_nor_outlives_signing_out(
    served: tuple[str, World], page: Any
) -> None:
    base, world = served
    sign_in(page, base, world.supervisor)
    # A case asked for, then the outcomes before its answers arrived: the outcomes stay.
    held = _hold(page, "**/api/v1/cases/**")
    page.get_by_role("link", name=world.journey.id).first.click()
    page.get_by_role("link", name="Outcomes").click()
    page.locator("figure.chart").first.wait_for()
    _release(page, "**/api/v1/cases/**", held, 2)
    assert page.get_by_role("heading", name=f"Case {world.journey.id}").count() == 0
    assert page.get_by_role("heading", name="Outcomes").is_visible()

    # A filter chosen and a resource read, then the caseload asked for and the person signs out
    # before it arrives: nothing of it, nor of what was read, is left on the page or in the tab.
    page.get_by_label("Programme").select_option("health-care")
    page.get_by_role("button", name="Show").click()
    page.goto(f"{base}/console/#case/{world.journey.id}")
    page.locator("button", has_text="EpisodeOfCare/").first.click()
    page.locator("#resource-json").filter(has_text='"resourceType": "EpisodeOfCare"').wait_for()
    page.get_by_role("button", name="Close").click()
    held = _hold(page, "**/api/v1/caseload*")
    page.get_by_role("link", name="Caseload").click()
    page.get_by_role("button", name="Sign out").click()
    _release(page, "**/api/v1/caseload*", held, 1)
    assert page.get_by_role("alert").inner_text() == "Signed out."
    assert page.locator("#view").inner_text() == ""
    assert page.locator("#resource-json").text_content() == ""
    assert page.evaluate("() => Object.keys(sessionStorage)") == []


def test_an_error_page_that_is_not_json_is_told_by_its_status(served: tuple[str, World], page: Any) -> None:
    # A proxy in front of the API answers with its own HTML page (here: it does not route the API).
    base, world = served
    sign_in(page, base, world.supervisor)
    page.route(
        "**/api/v1/sync/conflicts*",
        lambda route: route.fulfill(status=404, content_type="text/html", body="<html><body>nginx</body></html>"),
    )
    page.get_by_role("link", name="Sync health").click()
    page.get_by_role("heading", name="Not found").wait_for()
    assert page.get_by_role("alert").inner_text() == "Not Found"


def test_a_key_pasted_with_a_character_no_key_has_is_refused_as_not_valid(served: tuple[str, World], page: Any) -> None:
    base, world = served
    page.goto(f"{base}/console/")
    page.get_by_label("API key").fill(world.supervisor[:20] + "…")  # copied from a shortened display
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("alert").filter(has_text="not valid").wait_for()
    assert page.locator("#nav").is_hidden()


def test_an_ongoing_stay_runs_to_the_readers_own_day(served: tuple[str, World], browser: Any) -> None:
    """In Auckland at 8 in the morning it is still yesterday in UTC: the chart took today as UTC's day, so a
    stay in progress ended a day short there (and a day late in the Americas' evenings)."""
    base, world = served
    case = Case(
        id="case-auckland",
        programme="health-care",
        status="closed",  # off the caseload the other tests read
        period={"start": dt.date(2026, 5, 20), "end": dt.date(2026, 6, 12)},
        patient={"kind": "patient", "id": "pat-auckland"},
        stays=[
            {"setting": "acute-hospital", "start": dt.date(2026, 6, 1), "end": dt.date(2026, 6, 3)},
            {"setting": "skilled-nursing", "status": "in-progress", "start": dt.date(2026, 6, 10)},
        ],
    )
    with open_store(world.url) as store, store.session() as s:
        save_case(s, case, enqueue=False)
    context = browser.new_context(viewport={"width": 1366, "height": 900}, timezone_id="Pacific/Auckland")
    try:
        page = context.new_page()
        page.clock.set_fixed_time(dt.datetime(2026, 6, 14, 20, 0, tzinfo=dt.UTC))  # 15 June, 08:00 in Auckland
        sign_in(page, base, world.supervisor)
        page.goto(f"{base}/console/#case/{case.id}")
        page.get_by_role("heading", name=f"Case {case.id}").wait_for()
        widths = [
            float(w) for w in page.locator("svg.lanes rect").evaluate_all("rs => rs.map(r => r.getAttribute('width'))")
        ]
        # The chart spans 1 June to 15 June (14 days over 740 units): the stay since 10 June is 5 of them.
        assert widths == [pytest.approx(740 * 2 / 14), pytest.approx(740 * 5 / 14)]
    finally:
        context.close()


def _closed_case(case_id: str, period: tuple[str, str], **parts: Any) -> Case:
    """A closed case (off the caseload the other tests read) of a patient of its own, with ``parts``."""
    return Case.model_validate(
        {
            "id": case_id,
            "programme": "health-care",
            "status": "closed",
            "period": {"start": period[0], "end": period[1]},
            "patient": {"kind": "patient", "id": f"pat-{case_id}"},
            **parts,
        }
    )


def _import_as_a_hospital_wrote_it(
    world: World, case: Case, edit: Callable[[dict[str, Any]], None], tmp_path: Path
) -> None:
    """``case`` imported as FHIR resources, each changed by ``edit`` first (a date written as a month)."""
    settings = Settings(database_url=world.url)
    bundle = case_to_bundle(case, "R4", settings.identifier_system)
    for entry in bundle["entry"]:
        edit(entry["resource"])
    entries = [{"fullUrl": e["fullUrl"], "resource": e["resource"]} for e in bundle["entry"]]
    path = tmp_path / f"{case.id}.json"
    path.write_text(json.dumps({"resourceType": "Bundle", "type": "collection", "entry": entries}))
    with open_store(world.url) as store:
        import_files(store, [path], settings)


def test_a_goal_due_in_a_month_reads_as_that_month(served: tuple[str, World], page: Any, tmp_path: Path) -> None:
    """A hospital wrote a goal due "2026-09": the page showed 2026-09-30, a deadline nobody set."""
    base, world = served
    case = _closed_case(
        "case-month",
        ("2026-01-10", "2026-11-30"),
        goals=[{"id": "goal-month", "description": "Walk 200 m unaided", "start": "2026-02-01", "due": "2026-09-15"}],
    )

    def due_in_september(resource: dict[str, Any]) -> None:
        if resource["resourceType"] == "Goal":
            resource["target"][0]["dueDate"] = "2026-09"

    _import_as_a_hospital_wrote_it(world, case, due_in_september, tmp_path)
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{case.id}")
    page.get_by_role("heading", name=f"Case {case.id}").wait_for()
    goals = page.locator("table").filter(has=page.get_by_role("columnheader", name="Achievement"))
    assert goals.locator("tbody tr").all_inner_texts() == ["Walk 200 m unaided\tactive\t—\t2026-09"]
    assert page.locator(".timeline").get_by_text("Walk 200 m unaided — active (due 2026-09)").count() == 1
    assert "2026-09-30" not in page.locator("#view").inner_text()


def test_skipping_to_the_content_stays_on_the_case(served: tuple[str, World], page: Any) -> None:
    """The skip link set the address to #main, which the router read as a view: the caseload replaced the case."""
    base, world = served
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{world.journey.id}")
    page.get_by_role("heading", name=f"Case {world.journey.id}").wait_for()
    page.get_by_role("link", name="Skip to content").focus()  # as the first Tab on a fresh page does
    page.keyboard.press("Enter")
    page.wait_for_load_state("networkidle")
    assert page.evaluate("() => location.hash") == f"#case/{world.journey.id}"
    assert page.get_by_role("heading", name=f"Case {world.journey.id}").count() == 1
    assert page.evaluate("() => document.activeElement.id") == "main"


def _unnamed_columns(page: Any) -> list[str]:
    """The tables (by caption) holding a column header with no words: a screen reader names each cell by it."""
    return list(
        page.evaluate(
            """() => [...document.querySelectorAll("#view th")]
                 .filter((th) => !th.textContent.trim())
                 .map((th) => th.closest("table").querySelector("caption").textContent)"""
        )
    )


def test_every_column_says_what_it_holds(served: tuple[str, World], page: Any) -> None:
    """The transitions' readmission column, the outcome tables' programme column and the quarantine's
    buttons had a header with no words."""
    base, world = served
    with open_store(world.url) as store, store.session() as s:
        add_quarantine(
            s, source="https://ehr.example/fhir", raw={"resourceType": "Goal", "id": "g-cols"}, reason="no subject"
        )
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{world.journey.id}")
    page.get_by_role("heading", name=f"Case {world.journey.id}").wait_for()
    assert page.locator("#view th").count() > 0 and _unnamed_columns(page) == []
    page.get_by_role("link", name="Outcomes").click()
    page.locator("figure.chart").first.wait_for()
    assert _unnamed_columns(page) == []
    page.get_by_role("link", name="Sync health").click()
    page.get_by_role("table", name="Quarantine").wait_for()
    assert _unnamed_columns(page) == []


def test_a_view_is_not_read_out_whole(served: tuple[str, World], page: Any) -> None:
    """The view was a live region: a screen reader read each new view through, every contact of a long
    case, on top of the heading the focus moves to. Its notices stay regions of their own."""
    base, world = served
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{world.journey.id}")
    page.get_by_role("heading", name=f"Case {world.journey.id}").wait_for()
    live = "[aria-live]:not([aria-live='off']), [role=status], [role=alert], [role=log]"
    assert page.evaluate(f"() => document.querySelector('.timeline').closest(\"{live}\")") is None
    assert page.evaluate("() => document.activeElement.textContent") == f"Case {world.journey.id}"


def test_a_case_shows_its_care_team_and_what_each_contact_says(served: tuple[str, World], page: Any) -> None:
    """The case's page named no one of its care team, and a contact read only 'phone': what the case
    manager wrote of it was nowhere. Markup in a note stays text."""
    base, world = served
    case = Case.model_validate(
        {
            "id": "case-team",
            "programme": "social-work",
            "status": "closed",  # off the caseload the other tests read
            "period": {"start": "2026-03-02", "end": "2026-05-29"},
            "patient": {"kind": "patient", "id": "pat-team", "name": "Åsa Øberg"},
            "team": [
                {
                    "role": "caregiver",
                    "party": {"kind": "related-person", "id": "rp-1", "name": "Jörg Øberg"},
                    "start": "2026-03-02",
                },
                {
                    "role": "nurse",
                    "party": {"kind": "practitioner", "id": "pr-9"},
                    "start": "2026-03-05",
                    "end": "2026-04-30",
                },
            ],
            "contacts": [{"date": "2026-03-10", "mode": "phone", "note": f"Daughter calls daily {HOSTILE}"}],
        }
    )
    with open_store(world.url) as store, store.session() as s:
        save_case(s, case, enqueue=False)
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{case.id}")
    page.get_by_role("heading", name=f"Case {case.id}").wait_for()
    assert page.get_by_role("table", name="Care team").locator("tbody tr").all_inner_texts() == [
        "Jörg Øberg\tcaregiver\t2026-03-02\t—",
        "pr-9\tnurse\t2026-03-05\t2026-04-30",
    ]
    contact = page.locator(".timeline li").filter(has_text="Contact:")
    assert contact.inner_text() == f"2026-03-10Contact: phone — Daughter calls daily {HOSTILE}"
    assert page.locator("#view img, #view script").count() == 0
    assert page.evaluate("() => window.__xss") is None


def test_each_view_names_the_tab(served: tuple[str, World], page: Any) -> None:
    """Every view was titled 'fhir-cm console': the tabs, the history and a screen reader told none apart."""
    base, world = served
    page.goto(f"{base}/console/")
    page.get_by_role("heading", name="Sign in").wait_for()
    assert page.title() == "Sign in · fhir-cm console"
    sign_in(page, base, world.supervisor)
    assert page.title().startswith("Caseload on ")
    page.goto(f"{base}/console/#case/{world.journey.id}")
    page.get_by_role("heading", name=f"Case {world.journey.id}").wait_for()
    assert page.title() == f"Case {world.journey.id} · fhir-cm console"
    page.get_by_role("link", name="Outcomes").click()
    page.locator("figure.chart").first.wait_for()
    assert page.title() == "Outcomes · fhir-cm console"


def test_a_stay_that_ended_in_a_month_moves_on_in_that_month(
    served: tuple[str, World], page: Any, tmp_path: Path
) -> None:
    """A hospital stay that ended "2026-03" read as a move on 2026-03-31, in the transitions, the transfer
    summary and the journey: a day nobody wrote."""
    base, world = served
    case = _closed_case(
        "case-march",
        ("2026-03-01", "2026-05-30"),
        stays=[
            {
                "id": "stay-acute",
                "setting": "acute-hospital",
                "start": "2026-03-02",
                "end": "2026-03-31",
                "discharge_disposition": "snf",
            },
            {"id": "stay-snf", "setting": "skilled-nursing", "start": "2026-03-31", "end": "2026-04-20"},
        ],
    )

    def left_in_march(resource: dict[str, Any]) -> None:
        if resource["resourceType"] == "Encounter" and resource["period"]["start"] == "2026-03-02":
            resource["period"]["end"] = "2026-03"

    _import_as_a_hospital_wrote_it(world, case, left_in_march, tmp_path)
    sign_in(page, base, world.supervisor)
    page.goto(f"{base}/console/#case/{case.id}")
    page.get_by_role("heading", name=f"Case {case.id}").wait_for()
    moves = page.get_by_role("table", name="Transitions between care settings").locator("tbody tr")
    assert moves.all_inner_texts() == ["2026-03\tacute hospital\tskilled nursing\tsnf\t—\t"]
    assert page.get_by_role("button", name="Transfer summary 1: acute hospital → skilled nursing, 2026-03").count() == 1
    assert (
        page.locator(".timeline li").filter(has_text="Left: acute").inner_text() == "2026-03Left: acute hospital → snf"
    )
    # The nursing home wrote its day: that one is shown as the day it is.
    assert page.locator(".timeline li").filter(has_text="Admitted: skilled").inner_text() == (
        "2026-03-31Admitted: skilled nursing"
    )
