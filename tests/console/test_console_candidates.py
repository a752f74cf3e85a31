"""The console's Candidates view end to end: `fhir-cm serve` on a store holding the ranking of a screened
population (as `fhir-cm identify` leaves it), Debian's Chromium driven by Playwright.

A supervisor pages through the candidates with their scores and reasons, chooses some (by keyboard too) and
enrols them, or the top N, into a programme: the cases are made (read back through the API), the answer is
shown and the list no longer offers them. A patient enrolled meanwhile is said not enrolled, with why; a
programme the key is not for is refused in words; a case manager is not offered the view, and is told why
at its address; an empty list says what fills it.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fhir_cm.domain import ProgrammeType
from fhir_cm.identify import ScreeningReport, fact_of, load_rules, rank
from fhir_cm.store import ApiRole, create_api_key, list_candidates, open_store, put_facts, replace_candidates
from tests.api_process import ApiProcess
from tests.console.test_console_browser import _require_chromium, browser, page, playwright_sync, shot, sign_in
from tests.identify.population import PROFILES, population

__all__ = ["browser", "page"]  # the browser fixtures, used here on this module's store

SERVER = "https://ehr.example.org/fhir"
#: Seven profiles make candidates: 4 patients of each, 28 candidates, two pages of 25.
PER_PROFILE = 4


class Served:
    """The served API, its store and the keys of a supervisor, a rehabilitation supervisor and a case manager."""

    def __init__(self, url: str, base: str, keys: dict[str, str], screened_on: dt.date | None) -> None:
        self.url, self.base = url, base
        self.screened_on = screened_on  # the day the screening ranked on, the day its rows say they were assessed
        self.supervisor, self.rehab, self.cm = keys["supervisor"], keys["rehab"], keys["cm"]

    def get(self, path: str, key: str | None = None) -> Any:
        answer = httpx.get(f"{self.base}{path}", headers={"X-API-Key": key or self.supervisor}, timeout=30)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def listed(self) -> list[dict[str, Any]]:
        """Every candidate the API offers now, highest score first."""
        return list(self.get("/api/v1/candidates?limit=500")["candidates"])


def _keys(url: str) -> dict[str, str]:
    with open_store(url) as store, store.session() as s:
        _, supervisor = create_api_key(s, name="Supervisor", role=ApiRole.SUPERVISOR)
        _, rehab = create_api_key(
            s, name="Rehabilitation lead", role=ApiRole.SUPERVISOR, programme=ProgrammeType.REHABILITATION
        )
        _, cm = create_api_key(s, name="Case manager", role=ApiRole.CASE_MANAGER, practitioner_id="pr-console")
    return {"supervisor": supervisor, "rehab": rehab, "cm": cm}


#: The Group a second ranking covers (the readmitted patients), and a patient whose row was ranked before
#: scopes were kept (a store upgraded since).
CLINIC, UNRECORDED = "north-clinic", "cand-ed-0"


def _screen(url: str) -> dt.date:
    """The population's facts in the store, ranked as a screening ranks them (on the day the API enrols on):
    the whole population, then one Group's members. Returns the day it ranked on."""
    rules = load_rules()
    today = dt.date.today()
    seeded = list(population("cand", PER_PROFILE, today))
    facts = [f for _, _, rs in seeded for r in rs if (f := fact_of(r, rules))]
    clinic = [pid for pid, profile, _ in seeded if profile == "readmitted"]
    with open_store(url) as store:
        with store.session() as s:
            put_facts(s, SERVER, facts)
        report = ScreeningReport(server=SERVER, scope="system", source="search", transaction_time="")
        rank(store, SERVER, rules, today, report)
        report = ScreeningReport(
            server=SERVER, scope=f"Group/{CLINIC}", source="export", transaction_time="", members=clinic
        )
        rank(store, SERVER, rules, today, report)
        with store.session() as s:
            before = [c.model_copy(update={"scope": None}) for c in list_candidates(s, SERVER, among=[UNRECORDED])]
            replace_candidates(s, SERVER, [UNRECORDED], before)
    return today


def _served(tmp_path_factory: pytest.TempPathFactory, name: str, *, screened: bool) -> Iterator[Served]:
    """`fhir-cm serve` on a store of its own with the three keys, screened or not, its FHIR server configured."""
    _require_chromium()
    url = f"sqlite:///{tmp_path_factory.mktemp(name) / 'console.db'}"
    keys = _keys(url)
    screened_on = _screen(url) if screened else None
    api = ApiProcess(url, env={"FHIR_CM_FHIR_BASE": SERVER})
    api.start()
    try:
        yield Served(url, api.base, keys, screened_on)
    finally:
        api.stop()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    yield from _served(tmp_path_factory, "console-candidates", screened=True)


def open_candidates(page: Any, served: Served, key: str) -> None:
    sign_in(page, served.base, key)
    page.get_by_role("link", name="Candidates").click()
    page.get_by_role("heading", name=re.compile(r"^Candidates")).wait_for()


def rows(page: Any) -> Any:
    return page.get_by_role("table", name="Candidates").locator("tbody tr")


def test_a_supervisor_pages_through_the_candidates_and_enrols_the_chosen_and_the_top(served: Served, page: Any) -> None:
    before = served.listed()
    assert len(before) == PER_PROFILE * sum(1 for reasons in PROFILES.values() if reasons) == 28
    open_candidates(page, served, served.supervisor)
    page.get_by_role("heading", name="Candidates (page 1 of 2)").wait_for()
    assert page.title() == "Candidates (page 1 of 2) · fhir-cm console"
    headers = page.get_by_role("table", name="Candidates").get_by_role("columnheader").all_inner_texts()
    assert headers[1:] == ["Patient", "Score", "Reasons", "Screened", "Ranked among"]
    # Each row as the API lists it: the patient, the score, each reason as its rule says it, the day screened,
    # and which ranking made it — the Group's run for its members, the whole population's for the others.
    first = before[:25]
    assert rows(page).count() == 25
    among = {"system": "Whole population", f"Group/{CLINIC}": f"Group {CLINIC}", None: "Not recorded"}
    for row, c in zip(rows(page).all(), first, strict=True):
        cells = row.locator("td")
        assert cells.nth(1).inner_text() == c["patient_id"]
        assert cells.nth(2).inner_text() == str(c["score"])
        assert cells.nth(3).locator("li").all_inner_texts() == [r["text"] for r in c["reasons"]]
        assert cells.nth(4).inner_text() == c["assessed_on"] == str(served.screened_on)
        assert cells.nth(5).inner_text() == among[c["scope"]]
    scopes = {c["patient_id"]: c["scope"] for c in before}
    assert scopes[UNRECORDED] is None and list(scopes.values()).count(f"Group/{CLINIC}") == PER_PROFILE
    assert {among[scopes[p]] for p in rows(page).locator("td:nth-child(2)").all_inner_texts()} == set(among.values())
    assert any("readmitted within" in r["text"] for c in before for r in c["reasons"])

    page.get_by_role("link", name="Next page").click()
    page.get_by_role("heading", name="Candidates (page 2 of 2)").wait_for()
    assert rows(page).locator("td:nth-child(2)").all_inner_texts() == [c["patient_id"] for c in before[25:]]
    assert page.get_by_role("link", name="Next page").count() == 0
    page.get_by_role("link", name="Previous page").click()
    page.get_by_role("heading", name="Candidates (page 1 of 2)").wait_for()

    # Two chosen, one by the keyboard, enrolled into social work.
    chosen = [before[1]["patient_id"], before[3]["patient_id"]]
    page.get_by_label(f"Choose patient {chosen[0]}").check()
    page.get_by_label(f"Choose patient {chosen[1]}").focus()
    page.keyboard.press("Space")
    assert page.get_by_label(f"Choose patient {chosen[1]}").is_checked()
    page.get_by_label("Programme of the cases").select_option("social-work")
    shot(page, "candidates")
    page.get_by_role("button", name="Enrol the chosen").click()
    made = page.get_by_role("status").filter(has_text="2 cases made (referred, social work)")
    made.wait_for()
    links = made.get_by_role("link")
    assert [item.inner_text().split(" for patient ")[1] for item in made.locator("li").all()] == chosen
    for link, patient in zip(links.all(), chosen, strict=True):
        case_id = link.inner_text().removeprefix("Case ")
        case = served.get(f"/api/v1/cases/{case_id}")["case"]
        assert (case["status"], case["programme"], case["patient"]["id"]) == ("referred", "social-work", patient)
    # The list as it now stands: the enrolled are no longer offered, the choice of programme is kept.
    page.get_by_role("heading", name="Candidates (page 1 of 2)").wait_for()
    shown = rows(page).locator("td:nth-child(2)").all_inner_texts()
    assert shown == [c["patient_id"] for c in before if c["patient_id"] not in chosen][:25]
    assert page.get_by_label("Programme of the cases").input_value() == "social-work"

    # The top two of the list as it stands now, into health care.
    top = [c["patient_id"] for c in served.listed()[:2]]
    page.get_by_label("Programme of the cases").select_option("health-care")
    # By the keyboard: Enter in the number enrols the top ones (not the chosen, the form's first button).
    page.get_by_label("Or the top").fill("2")
    page.get_by_label("Or the top").press("Enter")
    made = page.get_by_role("status").filter(has_text="2 cases made (referred, health care)")
    made.wait_for()
    assert [item.inner_text().split(" for patient ")[1] for item in made.locator("li").all()] == top
    for link in made.get_by_role("link").all():
        case = served.get(f"/api/v1/cases/{link.inner_text().removeprefix('Case ')}")["case"]
        assert case["programme"] == "health-care" and case["patient"]["id"] in top
    playwright_sync.expect(page.get_by_role("heading", level=1)).to_have_text("Candidates")
    assert len(served.listed()) == 28 - 4
    assert not set(top + chosen) & set(rows(page).locator("td:nth-child(2)").all_inner_texts())


def test_a_candidate_enrolled_meanwhile_is_said_not_enrolled_and_why(served: Served, page: Any) -> None:
    open_candidates(page, served, served.supervisor)
    first, second = (c["patient_id"] for c in served.listed()[:2])
    page.get_by_label(f"Choose patient {first}").check()
    page.get_by_label(f"Choose patient {second}").check()
    # Another supervisor (the CLI, another tab) enrols the first while this page still offers them.
    answer = httpx.post(
        f"{served.base}/api/v1/candidates/enrol",
        json={"patients": [first]},
        headers={"X-API-Key": served.supervisor},
        timeout=30,
    )
    assert answer.status_code == 200 and len(answer.json()["enrolled"]) == 1
    page.get_by_role("button", name="Enrol the chosen").click()
    said = page.get_by_role("status").filter(has_text="Not enrolled: 1")
    said.wait_for()
    made, skipped = said.locator("ul").all()
    assert made.inner_text().endswith(f" for patient {second}")
    assert skipped.inner_text() == f"Patient {first}: already in an open case"
    assert page.get_by_label(f"Choose patient {first}").count() == 0


def test_a_programme_supervisor_enrols_into_theirs_and_another_is_refused_in_words(served: Served, page: Any) -> None:
    open_candidates(page, served, served.rehab)
    programme = page.get_by_label("Programme of the cases")
    assert programme.locator("option").all_inner_texts() == ["rehabilitation"]
    patient = served.listed()[0]["patient_id"]
    # A form the page did not offer (altered in the browser's own tools, or left from another key's session):
    # the API's 403 is said over the list, nobody enrolled, the choice kept to put right.
    page.evaluate(
        """() => document.querySelector("select[name=programme]").append(new Option("social work", "social-work", true, true))"""
    )
    page.get_by_label(f"Choose patient {patient}").check()
    page.get_by_role("button", name="Enrol the chosen").click()
    refused = page.get_by_role("alert").filter(has_text="Nobody was enrolled")
    refused.wait_for()
    assert refused.inner_text() == "Nobody was enrolled: this supervisor key is limited to programme 'rehabilitation'"
    assert page.get_by_label(f"Choose patient {patient}").is_checked()
    assert served.listed()[0]["patient_id"] == patient

    page.get_by_role("button", name="Enrol the chosen").click()
    page.get_by_role("status").filter(has_text="1 case made (referred, rehabilitation)").wait_for()
    case_id = page.get_by_role("status").get_by_role("link").inner_text().removeprefix("Case ")
    case = served.get(f"/api/v1/cases/{case_id}", served.rehab)["case"]
    assert (case["programme"], case["patient"]["id"]) == ("rehabilitation", patient)


def test_a_case_manager_is_not_offered_the_candidates_and_is_told_why_at_their_address(
    served: Served, page: Any
) -> None:
    sign_in(page, served.base, served.cm)
    assert page.get_by_role("navigation", name="Console").get_by_role("link").all_inner_texts() == [
        "Caseload",
        "Worklist",
        "Outcomes",
        "Sync health",
    ]
    page.goto(f"{served.base}/console/#candidates")
    page.get_by_role("heading", name="Not allowed").wait_for()
    assert page.get_by_role("alert").inner_text() == (
        "The candidates are for supervisors: only a supervisor key may do this."
    )
    assert page.get_by_role("table").count() == 0


def test_an_address_past_the_list_or_naming_no_page(served: Served, page: Any) -> None:
    open_candidates(page, served, served.supervisor)
    rows(page).first.wait_for()
    page.get_by_role("link", name="Caseload").click()
    page.get_by_role("heading", name=re.compile(r"^Caseload on ")).wait_for()
    # The list is shorter than that (enrolling shortens it): its last page is shown.
    page.goto(f"{served.base}/console/#candidates/9")
    rows(page).first.wait_for()
    listed = [c["patient_id"] for c in served.listed()]
    last = (len(listed) - 1) // 25
    assert rows(page).locator("td:nth-child(2)").all_inner_texts() == listed[last * 25 : last * 25 + 25]
    page.goto(f"{served.base}/console/#candidates/x1")
    page.get_by_role("heading", name="Not found").wait_for()
    assert page.get_by_role("alert").inner_text() == "There is no page at this address: #candidates/x1"


@pytest.fixture(scope="module")
def unscreened(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A served store no screening has ranked yet."""
    yield from _served(tmp_path_factory, "console-unscreened", screened=False)


def test_an_empty_list_says_what_fills_it(unscreened: Served, page: Any) -> None:
    open_candidates(page, unscreened, unscreened.supervisor)
    page.get_by_role("heading", name="Candidates").wait_for()
    said = page.locator("#view p").first.inner_text()
    assert "run fhir-cm identify" in said and said.startswith("No candidates")
    assert page.get_by_role("button", name="Enrol the chosen").count() == 0
