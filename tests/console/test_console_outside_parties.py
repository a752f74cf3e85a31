"""Another server's practitioners in a case a hospital sent (a GP of another trust on the care team, the
episode managed from there) are shown as outside parties, under the names the hospital gave them —
not as the local practitioners of the same ids."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.api.test_dates_as_written import TEAMED
from tests.console.test_console_browser import (
    World,
    _import_as_a_hospital_wrote_it,
    browser,
    page,
    served,
    sign_in,
)

__all__ = ["browser", "page", "served"]  # the browser fixtures, on a store of this module's own

OTHER = "https://other.example/fhir"
CASE = TEAMED.model_copy(update={"id": "case-outside"})


def elsewhere(resource: dict[str, Any]) -> None:
    """The nurse is the other server's (named), the social worker too (unnamed), and so is the manager."""
    if resource["resourceType"] == "CareTeam":
        for item in resource["participant"]:
            if item["id"] == "m-nurse":
                item["member"] = {"reference": f"{OTHER}/Practitioner/n-1", "display": "Nurse Elsewhere"}
            if item["id"] == "m-social":
                item["member"] = {"reference": f"{OTHER}/Practitioner/s-1"}
    if resource["resourceType"] == "EpisodeOfCare":
        resource["careManager"] = {"reference": f"{OTHER}/Practitioner/cm-far", "display": "Dr Far Away"}


def test_outside_members_and_manager_are_shown_as_outside_by_name_or_reference(
    served: tuple[str, World], page: Any, tmp_path: Path
) -> None:
    base, world = served
    _import_as_a_hospital_wrote_it(world, CASE, elsewhere, tmp_path)
    sign_in(page, base, world.supervisor)
    page.get_by_role("heading", name="Dr Far Away (outside: other.example)").wait_for()  # a caseload of its own

    page.goto(f"{base}/console/#case/{CASE.id}")
    page.get_by_role("heading", name=f"Case {CASE.id}").wait_for()
    assert "case manager Dr Far Away (outside: other.example)" in page.locator("main").inner_text()
    members = page.get_by_role("table", name="Care team").locator("tbody tr td:first-child").all_inner_texts()
    assert sorted(members) == [
        "Nurse Elsewhere (outside: other.example)",
        f"{OTHER}/Practitioner/s-1 (outside: other.example)",
    ]
