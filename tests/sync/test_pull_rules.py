"""A pulled resource that would make its case break a rule of what can be true is quarantined, not dropped.

A contact dated in the future or an Encounter overlapping another inpatient stay reads fine as FHIR
and as a case: only the domain's rules (``fhir_cm.domain.Plausibility``) say it cannot be true. The
pull takes the case in without it and sets it aside with the rule it breaks, and no personal data.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
import respx

from fhir_cm.domain import Case, Contact, Stay
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, get_case, list_quarantine, open_store, save_case
from fhir_cm.sync import pull
from tests.mapping.builders import full_case

from .test_pull import BASE, SETTINGS, CaseServer, on_server

FUTURE = dt.date.today() + dt.timedelta(days=400)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as s:
        yield s


async def _pull(store: Store, case: Case) -> object:
    with respx.mock(base_url=BASE, assert_all_called=False) as mock:
        mock.route().mock(side_effect=CaseServer(on_server(case)))
        async with AsyncFhirClient(BASE) as client:
            return await pull(store, client, SETTINGS)


def _with(case: Case, **changes: object) -> Case:
    return Case.model_validate({**case.model_dump(), **changes})


async def test_a_future_contact_is_quarantined_and_the_rest_of_the_case_pulled(store: Store) -> None:
    case = full_case()
    bad = Contact(id="contact-future", date=FUTURE, mode="face-to-face", note="Visited Ann at home")
    report = await _pull(store, _with(case, contacts=[*case.contacts, bad]))

    assert (report.new_cases, report.quarantined) == (1, 1)  # type: ignore[attr-defined]
    with store.session(read_only=True) as s:
        pulled = get_case(s, case.id)
        (held,) = list_quarantine(s)
    assert pulled is not None and pulled.model_dump() == case.model_dump()
    assert held.resource_type == "Communication" and "contact-future" in held.raw
    assert held.reason.startswith("breaks a rule of what can be true: ")
    assert "contacts." in held.reason and ".date" in held.reason
    for phi in ("Ann", "Visited", FUTURE.isoformat()):
        assert phi not in held.reason


async def test_an_overlapping_inpatient_stay_is_quarantined(store: Store) -> None:
    case = full_case()
    first = next(s for s in case.stays if s.end is not None)
    overlap = Stay(
        id="stay-overlap", setting="skilled-nursing", start=first.start, end=first.end, discharge_disposition="home"
    )
    report = await _pull(store, _with(case, stays=[*case.stays, overlap]))

    assert report.quarantined == 1  # type: ignore[attr-defined]
    with store.session(read_only=True) as s:
        pulled = get_case(s, case.id)
        (held,) = list_quarantine(s)
    assert pulled is not None and [s.id for s in pulled.stays] == [s.id for s in case.stays]
    assert held.resource_type == "Encounter" and "overlaps inpatient stay" in held.reason


async def test_a_breach_the_local_case_already_had_does_not_hold_back_the_server(store: Store) -> None:
    case = full_case()
    imported = _with(case, contacts=[*case.contacts, Contact(id="contact-future", date=FUTURE, mode="phone")])
    with store.session() as s:
        save_case(s, imported, enqueue=False)  # as an import would have stored it
    report = await _pull(store, _with(imported, acuity="intensive"))

    assert report.quarantined == 0  # type: ignore[attr-defined]
    with store.session(read_only=True) as s:
        pulled = get_case(s, case.id)
    assert pulled is not None and pulled.acuity.value == "intensive" and len(pulled.contacts) == len(imported.contacts)
