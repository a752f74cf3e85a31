"""A follow-up a hospital wrote as due in a month is said as written in the caseload and the transitions.

The domain holds days, so a follow-up due "2025-07" is due by 2025-07-31: the caseload sorted and
counted it as overdue by that day, and showed it — and the transitions' "follow-up due" — as
2025-07-31, a deadline nobody set. The caseload works from the cases alone (a latency budget), so what
was written is kept with each case; these tests also hold it to reading no stored resource.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import event

from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.store import Store, get_case, record_transitions

from .conftest import Keys, bearer
from .test_dates_as_written import _import

FOLLOWED = Case.model_validate(
    {
        "id": "case-followed",
        "programme": "health-care",
        "status": "active",
        "period": {"start": "2025-05-01"},
        "patient": {"kind": "patient", "id": "patient-f", "name": "Ada Example"},
        "case_manager": {"kind": "practitioner", "id": "cm-1"},
        "stays": [
            {
                "id": "stay-h",
                "setting": "acute-hospital",
                "status": "finished",
                "start": "2025-06-10",
                "end": "2025-06-20",
                "discharge_disposition": "home",
            }
        ],
        "referrals": [
            {
                "id": "ref-follow",
                "kind": "follow-up",
                "service": "Post-discharge visit",
                "status": "requested",
                "authored": "2025-06-20",
                "due": "2025-07-04",
                "for_stay": "stay-h",
            }
        ],
    }
)


def due_in_july(resource: dict[str, Any]) -> None:
    """The hospital's ServiceRequest says the follow-up is to be done in July, no day."""
    if resource["resourceType"] == "ServiceRequest":
        resource["occurrenceDateTime"] = "2025-07"


def due_on(day: str) -> Callable[[dict[str, Any]], None]:
    """The hospital's ServiceRequest, sent again with the follow-up due on ``day``."""

    def edit(resource: dict[str, Any]) -> None:
        if resource["resourceType"] == "ServiceRequest":
            resource["occurrenceDateTime"] = day

    return edit


def _caseload_row(client: TestClient, key: str, on: str | None = None) -> dict[str, Any]:
    params = {"on": on} if on else {}
    body = client.get("/api/v1/caseload", params=params, headers=bearer(key)).json()
    [row] = [c for m in body["managers"] for c in m["cases"] if c["case_id"] == FOLLOWED.id]
    return row


def test_the_caseload_says_a_follow_up_due_in_a_month_as_written(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    _import(tmp_path, api_store, settings, FOLLOWED, due_in_july)
    row = _caseload_row(client, keys.supervisor)
    assert (row["next_follow_up_due"], row["next_follow_up_due_as_written"]) == ("2025-07-31", "2025-07")
    assert row["follow_ups_overdue"] == 0
    # Overdue keeps the real day: due by the end of July, overdue after it.
    assert _caseload_row(client, keys.supervisor, on="2025-07-31")["follow_ups_overdue"] == 0
    late = _caseload_row(client, keys.supervisor, on="2025-08-01")
    assert (late["next_follow_up_due_as_written"], late["follow_ups_overdue"]) == ("2025-07", 1)

    # The hospital gives the day since: the same day, said as that day (the kept caseload moves with it).
    _import(tmp_path, api_store, settings, FOLLOWED, due_on("2025-07-31"))
    row = _caseload_row(client, keys.supervisor)
    assert (row["next_follow_up_due"], row["next_follow_up_due_as_written"]) == ("2025-07-31", None)
    _import(tmp_path, api_store, settings, FOLLOWED, due_in_july)
    assert _caseload_row(client, keys.supervisor)["next_follow_up_due_as_written"] == "2025-07"


def test_a_follow_up_made_here_is_said_as_its_day(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    """Sorting is by the real day: "2025-07" reads as the 31st, after a follow-up made here due the 15th;
    of two due the 31st, the one given as that day is the one shown."""
    _import(tmp_path, api_store, settings, FOLLOWED, due_in_july)
    for rid, due in (("ref-mid", "2025-07-15"), ("ref-end", "2025-07-31")):
        made = client.post(
            f"/api/v1/cases/{FOLLOWED.id}/referrals",
            json={**FOLLOWED.referrals[0].model_dump(mode="json"), "id": rid, "due": due},
            headers=bearer(keys.supervisor),
        )
        assert made.status_code == 201, made.text
        row = _caseload_row(client, keys.supervisor)
        assert (row["next_follow_up_due"], row["next_follow_up_due_as_written"]) == (due, None)
        cancelled = client.post(
            f"/api/v1/cases/{FOLLOWED.id}/referrals/{rid}/status",
            json={"status": "cancelled", "reason": "made to test the order"},
            headers=bearer(keys.supervisor),
        )
        assert cancelled.status_code == 200, cancelled.text
    row = _caseload_row(client, keys.supervisor)
    assert (row["next_follow_up_due"], row["next_follow_up_due_as_written"]) == ("2025-07-31", "2025-07")


def test_the_caseload_reads_no_stored_resource(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    """What was written comes with each case's row: a caseload computed afresh reads no resource."""
    _import(tmp_path, api_store, settings, FOLLOWED, due_in_july)
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(api_store.engine, "before_cursor_execute", seen)
    try:
        row = _caseload_row(client, keys.supervisor)
    finally:
        event.remove(api_store.engine, "before_cursor_execute", seen)
    assert row["next_follow_up_due_as_written"] == "2025-07"
    assert any("FROM cases" in s for s in statements)
    assert [s for s in statements if "resources" in s] == []


def test_the_transitions_say_a_follow_up_due_in_a_month_as_written(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    _import(tmp_path, api_store, settings, FOLLOWED, due_in_july)
    with api_store.session() as s:  # as the tracker records the move it saw
        case = get_case(s, FOLLOWED.id)
        assert case is not None
        record_transitions(s, case.id, case.transitions)

    def follow_ups(key: str = "follow_up_due") -> tuple[list[Any], ...]:
        """The follow-ups of the case's moves: derived and recorded, in every list, in the case's read."""
        one = client.get(f"/api/v1/cases/{FOLLOWED.id}/transitions", headers=bearer(keys.supervisor)).json()
        every = client.get("/api/v1/transitions", headers=bearer(keys.supervisor)).json()
        read = client.get(f"/api/v1/cases/{FOLLOWED.id}", headers=bearer(keys.supervisor)).json()
        return (
            [t[key] for t in one["derived"]],
            [t[key] for t in one["recorded"]],
            [t[key] for t in every if t["case_id"] == FOLLOWED.id],
            [t[key] for t in read["transitions"]],
        )

    assert follow_ups() == (["2025-07-31"], ["2025-07-31"], ["2025-07-31"], ["2025-07-31"])
    assert follow_ups("follow_up_due_as_written") == (["2025-07"], ["2025-07"], ["2025-07"], ["2025-07"])

    # The hospital moves it to a day: the move derived now has that day; the one recorded keeps the day
    # it was recorded with, which the case no longer gives: said as that day.
    _import(tmp_path, api_store, settings, FOLLOWED, due_on("2025-07-20"))
    assert follow_ups() == (["2025-07-20"], ["2025-07-31"], ["2025-07-31"], ["2025-07-20"])
    assert follow_ups("follow_up_due_as_written") == ([None], [None], [None], [None])


def test_the_transfer_summary_says_a_follow_up_due_in_a_month_as_written(
    client: TestClient, keys: Keys, api_store: Store, settings: Settings, tmp_path: Path
) -> None:
    """The hand-off document served by the API: its words and its ServiceRequest say "2025-07"."""
    _import(tmp_path, api_store, settings, FOLLOWED, due_in_july)
    answer = client.get(f"/api/v1/cases/{FOLLOWED.id}/transitions/1/summary", headers=bearer(keys.supervisor))
    assert answer.status_code == 200, answer.text
    doc = answer.json()
    words = str(doc["entry"][0]["resource"]["section"])
    assert "Follow-up due 2025-07<" in words and "2025-07-31" not in words
    [follow_up] = [e["resource"] for e in doc["entry"] if e["resource"]["resourceType"] == "ServiceRequest"]
    assert follow_up["occurrenceDateTime"] == "2025-07"
