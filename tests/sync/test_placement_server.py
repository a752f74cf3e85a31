"""Post-discharge placement against the real servers, with the test playing the three facilities.

The case manager offers a skilled-nursing placement to three facilities: one ServiceRequest and three
Tasks appear on the server. The facilities answer on their Tasks — two accept, one asks for
information (a Communication ``partOf`` its Task) — and the answers are read back. Choosing a facility
that has not accepted is refused; choosing one that accepted marks its Task "selected", cancels the
two others ("not selected"), and puts the facility on the care team as the provider of the next stay.
Through the API, a facility's rejection and its reason are read back, and it cannot be chosen.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import getpass
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from fhir_cm.api import create_app
from fhir_cm.cli import app as cli_app
from fhir_cm.config import Settings
from fhir_cm.domain import CareSetting, Case, CaseStatus, Party, StayStatus
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.jobs import choose_facility, follow_placement, placements_of
from fhir_cm.store import ApiRole, Store, create_api_key, get_case, get_case_record, list_audit, save_case
from fhir_cm.sync import PlacementError, choose_placement, offer_placement, read_placement
from tests.servers import RunningServer
from tests.sync.seeding import put_organisations
from tests.sync.test_transitions_server import enrol

pytestmark = pytest.mark.server


async def answer(raw: AsyncFhirClient, task_id: str, status: str, reason: str | None = None) -> None:
    task = await raw.read("Task", task_id)
    task["status"] = status
    if reason:
        task["statusReason"] = {"text": reason}
    await raw.update(task)


async def test_offer_follow_and_choose_a_facility(store: Store, raw: AsyncFhirClient, settings: Settings) -> None:
    tag = uuid.uuid4().hex[:10]
    facilities = [f"snf-a-{tag}", f"snf-b-{tag}", f"snf-c-{tag}"]
    await put_organisations(raw, *facilities)
    case = await enrol(store, raw, settings, tag, case_manager=Party(kind="practitioner", id=f"cm-{tag}"))

    offer = await offer_placement(store, raw, settings, case.id, CareSetting.SKILLED_NURSING, facilities)
    request = await raw.read("ServiceRequest", offer.service_request_id)
    assert (request["status"], request["intent"], request["subject"]["reference"]) == (
        "active",
        "order",
        f"Patient/{case.patient.id}",
    )
    tasks = {c.organization: await raw.read("Task", c.task_id) for c in offer.candidates}
    for org, task in tasks.items():
        assert task["status"] == "requested" and task["owner"]["reference"] == f"Organization/{org}"
        assert task["focus"]["reference"] == f"ServiceRequest/{offer.service_request_id}"

    a, b, c = offer.candidates
    await answer(raw, a.task_id, "accepted")
    await answer(raw, b.task_id, "received")
    await raw.create(
        {
            "resourceType": "Communication",
            "status": "completed",
            "partOf": [{"reference": f"Task/{b.task_id}"}],
            "payload": [{"contentString": "Please send the latest wound care notes"}],
        }
    )
    await answer(raw, c.task_id, "accepted")

    followed = await read_placement(store, raw, offer.id)
    by_org = {x.organization: x for x in followed.candidates}
    assert by_org[a.organization].status == "accepted"
    assert (by_org[b.organization].status, by_org[b.organization].questions) == (
        "received",
        ["Please send the latest wound care notes"],
    )
    assert by_org[c.organization].status == "accepted"

    with pytest.raises(PlacementError, match="has not accepted"):
        await choose_placement(store, raw, settings, offer.id, b.organization)
    settled = await choose_placement(store, raw, settings, offer.id, c.organization)
    assert settled.chosen == c.organization
    chosen = await raw.read("Task", c.task_id)
    assert (chosen["status"], chosen["businessStatus"]["text"]) == ("accepted", "selected")
    for other in (a, b):  # one selected, the two others cancelled
        declined = await raw.read("Task", other.task_id)
        assert (declined["status"], declined["statusReason"]["text"]) == ("cancelled", "not selected")

    with store.session(read_only=True) as s:
        placed = get_case(s, case.id)
    assert placed is not None
    assert c.organization in {m.party.id for m in placed.team}
    (nxt,) = [s for s in placed.stays if s.status is StayStatus.PLANNED]
    assert (nxt.setting, nxt.provider.id if nxt.provider else None) == (CareSetting.SKILLED_NURSING, c.organization)


def enrolled_with(store: Store, settings: Settings, fhir_server: str, tag: str, facility: str) -> Case:
    """A case enrolled on the server, with a facility (Organization) there to offer it to."""

    async def setup() -> Case:
        async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
            await put_organisations(raw, facility)
            return await enrol(store, raw, settings, tag)

    return asyncio.run(setup())


def offered(api: TestClient, headers: dict[str, str], case_id: str, setting: str, facility: str) -> httpx.Response:
    """A placement offered to one facility through the API (asserted made)."""
    made = api.post(
        f"/api/v1/cases/{case_id}/placements", headers=headers, json={"setting": setting, "candidates": [facility]}
    )
    assert made.status_code == 201, made.text
    return made


def test_the_cli_and_the_api_offer_and_refuse_what_they_should(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    case = enrolled_with(store, settings, fhir_server, tag, f"hha-{tag}")
    env = {"FHIR_CM_DATABASE_URL": settings.database_url, "FHIR_CM_IDENTIFIER_SYSTEM": settings.identifier_system}
    result = CliRunner().invoke(
        cli_app,
        [
            "placement",
            "offer",
            "--case",
            case.id,
            "--setting",
            "home-health",
            "--candidate",
            f"hha-{tag}",
            "--fhir-base",
            fhir_server,
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert f"hha-{tag}" in result.stdout and "requested" in result.stdout
    with store.session(read_only=True) as s:
        (row,) = list_audit(s, case_id=case.id)
    assert (row.principal, row.action) == (f"cli:{getpass.getuser()}", "placement-offer")
    bad = CliRunner().invoke(
        cli_app,
        ["placement", "offer", "--case", case.id, "--setting", "moon", "--candidate", "x", "--fhir-base", fhir_server],
        env=env,
    )
    assert bad.exit_code == 2 and "unknown care setting" in bad.output
    for candidate in ("", "../../x y"):
        refused = CliRunner().invoke(
            cli_app,
            ["placement", "offer", "--case", case.id, "--setting", "home-health", "--candidate", candidate]
            + ["--fhir-base", fhir_server],
            env=env,
        )
        assert refused.exit_code == 1 and "Organization id" in refused.stderr, refused.output

    with store.session() as s:
        _, key = create_api_key(s, name="sup", role=ApiRole.SUPERVISOR)
    with TestClient(create_app(settings, store=store)) as api:
        headers = {"Authorization": f"Bearer {key}"}
        made = offered(api, headers, case.id, "home-health", f"hha-{tag}")
        listed = api.get(f"/api/v1/cases/{case.id}/placements", headers=headers).json()
        assert len(listed) == 2
        refused = api.post(
            f"/api/v1/cases/{case.id}/placements/{made.json()['id']}/choose",
            headers=headers,
            json={"candidate": f"hha-{tag}"},
        )
        assert refused.status_code == 409 and "has not accepted" in refused.json()["detail"]

        async def reject() -> None:  # the facility says no, with its reason
            async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
                task = await raw.read("Task", made.json()["candidates"][0]["task_id"])
                task["status"], task["statusReason"] = "rejected", {"text": "no capacity in that area"}
                await raw.update(task)

        asyncio.run(reject())
        followed = api.get(f"/api/v1/cases/{case.id}/placements/{made.json()['id']}", headers=headers).json()
        assert [(c["status"], c["reason"]) for c in followed["candidates"]] == [
            ("rejected", "no capacity in that area")
        ]
        still = api.post(
            f"/api/v1/cases/{case.id}/placements/{made.json()['id']}/choose",
            headers=headers,
            json={"candidate": f"hha-{tag}"},
        )
        assert still.status_code == 409 and "rejected" in still.json()["detail"]
        assert (
            api.post(
                "/api/v1/cases/nope/placements", headers=headers, json={"setting": "home-health", "candidates": ["x"]}
            ).status_code
            == 404
        )
        assert (
            api.post(
                f"/api/v1/cases/{case.id}/placements", headers=headers, json={"setting": "moon", "candidates": ["x"]}
            ).status_code
            == 422
        )


def test_an_offer_and_a_choice_through_the_api_are_audited_and_dated_the_apis_day(
    store: Store, settings: Settings, fhir_server: str
) -> None:
    """The choice changes the case (the facility joins the care team): like every change, it leaves an audit
    row, and it is dated the day the API keeps (its clock), as every other change it makes is — not the
    machine's calendar, which put the facility on the team from another day than the API's own."""
    tag = uuid.uuid4().hex[:10]
    case = enrolled_with(store, settings, fhir_server, tag, f"snf-{tag}")
    with store.session() as s:
        made_key, key = create_api_key(s, name="sup", role=ApiRole.SUPERVISOR)
    api_day = dt.date(2025, 1, 15)
    with TestClient(create_app(settings, store=store, clock=lambda: api_day)) as api:
        headers = {"Authorization": f"Bearer {key}"}
        made = offered(api, headers, case.id, "skilled-nursing", f"snf-{tag}")
        offer = made.json()

        async def accept() -> None:
            async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
                await answer(raw, offer["candidates"][0]["task_id"], "accepted")

        asyncio.run(accept())
        chosen = api.post(
            f"/api/v1/cases/{case.id}/placements/{offer['id']}/choose",
            headers=headers,
            json={"candidate": f"snf-{tag}"},
        )
        assert chosen.status_code == 200, chosen.text
    with store.session(read_only=True) as s:
        rows = [e for e in list_audit(s, case_id=case.id, limit=100) if e.principal == made_key.key_id]
        placed = get_case(s, case.id)
    assert placed is not None
    assert [(m.party.id, m.start) for m in placed.team] == [(f"snf-{tag}", api_day)]
    assert [(s.status, s.start) for s in placed.stays] == [(StayStatus.PLANNED, api_day)]
    changes = {(e.action, e.detail, e.request_id) for e in rows if e.action != "read"}
    assert changes == {
        ("placement-offer", f"placement:{offer['id']}", made.headers["X-Request-Id"]),
        ("placement-choose", f"placement:{offer['id']}:snf-{tag}", chosen.headers["X-Request-Id"]),
    }


async def test_a_candidate_that_is_no_organization_on_the_server_is_refused_before_anything_is_written(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """A Task owned by an Organization the server does not hold reaches no facility; HAPI refuses it half-way
    (the ServiceRequest and the Tasks before it written, nothing recorded here)."""
    tag = uuid.uuid4().hex[:10]
    await put_organisations(raw, f"snf-{tag}")
    case = await enrol(store, raw, settings, tag)
    with pytest.raises(PlacementError, match=f"no Organization nope-{tag}"):
        await offer_placement(store, raw, settings, case.id, CareSetting.SKILLED_NURSING, [f"snf-{tag}", f"nope-{tag}"])
    assert not placements_of(store, case.id)
    for rtype in ("ServiceRequest", "Task"):
        on_patient = raw.search(rtype).where("subject" if rtype == "ServiceRequest" else "patient", case.patient.id)
        assert await on_patient.fetch_all() == [], rtype


async def test_a_closed_case_is_neither_offered_nor_placed(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """Closed between the offer and the choice: the choice is refused before any Task changes, and the
    closed case gets no care team member or planned stay."""
    tag = uuid.uuid4().hex[:10]
    facilities = [f"snf-a-{tag}", f"snf-b-{tag}"]
    await put_organisations(raw, *facilities)
    case = await enrol(store, raw, settings, tag)
    offer = await offer_placement(store, raw, settings, case.id, CareSetting.SKILLED_NURSING, facilities)
    await answer(raw, offer.candidates[0].task_id, "accepted")
    with store.session() as s:
        record = get_case_record(s, case.id)
        assert record is not None
        closed = record.case.model_copy(deep=True)
        closed.change_status(CaseStatus.CLOSED, record.case.period.start)
        save_case(s, closed, expected_revision=record.revision)

    with pytest.raises(PlacementError, match=f"case {case.id} is closed"):
        await choose_placement(store, raw, settings, offer.id, facilities[0])
    assert [(await raw.read("Task", c.task_id))["status"] for c in offer.candidates] == ["accepted", "requested"]
    with store.session(read_only=True) as s:
        after = get_case(s, case.id)
    assert after is not None and after.team == [] and after.stays == []
    with pytest.raises(PlacementError, match=f"case {case.id} is closed"):
        await offer_placement(store, raw, settings, case.id, CareSetting.SKILLED_NURSING, facilities)


async def test_a_task_deleted_on_the_server_reads_as_deleted(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    """A facility's Task deleted on the server: the others are still followed and can be chosen; that one
    reads as deleted and cannot be."""
    tag = uuid.uuid4().hex[:10]
    facilities = [f"snf-a-{tag}", f"snf-b-{tag}"]
    await put_organisations(raw, *facilities)
    case = await enrol(store, raw, settings, tag)
    offer = await offer_placement(store, raw, settings, case.id, CareSetting.SKILLED_NURSING, facilities)
    a, b = offer.candidates
    await answer(raw, a.task_id, "accepted")
    await raw.delete("Task", b.task_id)

    followed = await read_placement(store, raw, offer.id)
    assert [(c.status, c.reason) for c in followed.candidates] == [
        ("accepted", None),
        ("deleted", f"Task/{b.task_id} is no longer on the server"),
    ]
    with pytest.raises(PlacementError, match="its Task is deleted"):
        await choose_placement(store, raw, settings, offer.id, b.organization)
    settled = await choose_placement(store, raw, settings, offer.id, a.organization)
    assert settled.chosen == a.organization
    assert [c.status for c in settled.candidates] == ["accepted", "deleted"]


async def test_an_answer_changed_while_choosing_is_not_overwritten(
    store: Store, raw: AsyncFhirClient, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each Task is read again before it is changed: a facility that withdraws its acceptance meanwhile
    is not selected, and one that declines meanwhile keeps its own answer instead of "not selected"."""
    tag = uuid.uuid4().hex[:10]
    facilities = [f"snf-a-{tag}", f"snf-b-{tag}", f"snf-c-{tag}"]
    await put_organisations(raw, *facilities)
    case = await enrol(store, raw, settings, tag)
    offer = await offer_placement(store, raw, settings, case.id, CareSetting.SKILLED_NURSING, facilities)
    a, b, c = offer.candidates
    for accepting in (a, c):
        await answer(raw, accepting.task_id, "accepted")
    original, reads = raw.read, {t.task_id: 0 for t in offer.candidates}
    # Each flips on the read made just before it is changed: a's second (this choice), b's third (the next).
    meanwhile = {a.task_id: (2, "facility a withdrew"), b.task_id: (3, "no beds after all")}

    async def read(resource_type: str, resource_id: str) -> dict[str, Any]:
        if resource_id in meanwhile:  # after the answers were read back, before the Task is changed
            reads[resource_id] += 1
            nth, reason = meanwhile[resource_id]
            if reads[resource_id] == nth:
                task = await original("Task", resource_id)
                task["status"], task["statusReason"] = "rejected", {"text": reason}
                await raw.update(task)
        return await original(resource_type, resource_id)

    monkeypatch.setattr(raw, "read", read)
    with pytest.raises(PlacementError, match="its Task is rejected"):
        await choose_placement(store, raw, settings, offer.id, a.organization)
    with store.session(read_only=True) as s:
        untouched = get_case(s, case.id)
    assert untouched is not None and untouched.team == [] and untouched.stays == []
    assert "businessStatus" not in await original("Task", a.task_id)

    settled = await choose_placement(store, raw, settings, offer.id, c.organization)
    assert [(x.status, x.reason) for x in settled.candidates] == [
        ("rejected", "facility a withdrew"),
        ("rejected", "no beds after all"),
        ("accepted", None),
    ]


async def test_an_offer_is_read_and_settled_only_on_the_server_it_was_made_on(
    store: Store, raw: AsyncFhirClient, settings: Settings, memory_fhir: RunningServer
) -> None:
    """The store records the server each offer was made on; its Task ids mean nothing on another. Followed or
    settled with another server configured, the offer is refused (naming its server) instead of reading each
    Task there as deleted — which overwrote the answers recorded — or changing whatever Task had that id."""
    tag = uuid.uuid4().hex[:10]
    facility = f"snf-{tag}"
    await put_organisations(raw, facility)
    case = await enrol(store, raw, settings, tag)
    offer = await offer_placement(store, raw, settings, case.id, CareSetting.SKILLED_NURSING, [facility])
    await answer(raw, offer.candidates[0].task_id, "accepted")
    assert [c.status for c in (await read_placement(store, raw, offer.id)).candidates] == ["accepted"]

    elsewhere = settings.model_copy(update={"fhir_base": memory_fhir.base_url})
    with pytest.raises(PlacementError, match=f"made on {raw.base_url}"):
        await follow_placement(store, elsewhere, offer.id)
    with pytest.raises(PlacementError, match=f"made on {raw.base_url}"):
        await choose_facility(store, elsewhere, offer.id, facility)
    (kept,) = placements_of(store, case.id)
    assert ([c.status for c in kept.candidates], kept.chosen) == (["accepted"], None)
    with store.session(read_only=True) as s:
        untouched = get_case(s, case.id)
    assert untouched is not None and untouched.team == [] and untouched.stays == []

    settled = await choose_facility(store, settings, offer.id, facility)  # on its own server it still settles
    assert settled.chosen == facility
