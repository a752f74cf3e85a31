"""The PACIO transfer summary: a valid document Bundle in R4 and R5, 15 sections, the case's plan of
care, problems, reason for referral, goals and care team in it, nothing else invented; from the CLI
and the API; and written to the real servers with a DocumentReference the receiving provider finds."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.bundle import Bundle as BundleR5
from fhir.resources.R4B.bundle import Bundle as BundleR4
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.domain import Case, Party, Referral, Stay, TeamMember
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store, open_store, save_case
from fhir_cm.sync import NoSuchMove, handoff_moves, push_cases, transfer_summary, write_transfer_summary
from tests.mapping.builders import full_case

SYSTEM = "urn:test:toc"
LOINC = "http://loinc.org"


def journey_case(**changes: Any) -> Case:
    """The full case, moved from hospital to a skilled nursing facility with a follow-up asked for."""
    case = full_case(**changes)
    snf = Stay(
        id="stay-2",
        setting="skilled-nursing",
        start=dt.date(2024, 1, 4),
        end=dt.date(2024, 1, 20),
        discharge_disposition="home",
    )
    follow = Referral(
        id="follow-up-stay-1",
        kind="follow-up",
        service="Post-discharge follow-up within 7 days",
        authored=dt.date(2024, 1, 4),
        due=dt.date(2024, 1, 11),
        for_stay="stay-1",
    )
    data = case.model_dump()
    data["stays"] = [*data["stays"], snf.model_dump()]
    data["referrals"] = [*data["referrals"], follow.model_dump()]
    return Case.model_validate(data)


def resources(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {e["fullUrl"]: e["resource"] for e in doc["entry"]}


def section(doc: dict[str, Any], code: str) -> dict[str, Any]:
    comp = doc["entry"][0]["resource"]
    (found,) = [s for s in comp["section"] if s["code"]["coding"][0]["code"] == code]
    return found


@pytest.mark.parametrize(("version", "model"), [("R4", BundleR4), ("R5", BundleR5)])
def test_a_move_out_of_hospital_makes_a_valid_transfer_summary_with_fifteen_sections(version: str, model: Any) -> None:
    case = journey_case()
    assert [(t.from_setting, t.to_setting) for t in handoff_moves(case)] == [
        ("acute-hospital", "skilled-nursing"),
        ("skilled-nursing", "home"),
    ]
    doc = transfer_summary(case, 1, version, SYSTEM, now=dt.datetime(2024, 1, 4, 12, tzinfo=dt.UTC))
    model.model_validate(doc)
    assert doc["type"] == "document" and doc["identifier"]["value"] == "case-1-toc-stay-1"
    comp = doc["entry"][0]["resource"]
    assert comp["resourceType"] == "Composition"
    assert comp["category"][0]["coding"][0] == {"system": LOINC, "code": "18761-7", "display": "Transfer summary note"}
    assert comp["type"]["coding"][0]["code"] == "18761-7"
    assert len(comp["section"]) == 15
    for s in comp["section"]:
        assert s["title"] and s["text"]["div"]
        assert ("entry" in s) != ("emptyReason" in s)  # entries, or why there are none
    held = resources(doc)
    plan = section(doc, "18776-5")
    assert sorted(held[r["reference"]]["resourceType"] for r in plan["entry"]) == [
        "CarePlan",
        "CareTeam",
        "Goal",
        "Goal",
    ]
    problems = section(doc, "11450-4")
    assert sorted(c["code"]["text"] for c in (held[r["reference"]] for r in problems["entry"])) == [
        "Cannot climb stairs",
        "No stable housing",
    ]
    referral = section(doc, "42349-1")
    referred = [held[r["reference"]] for r in referral["entry"]]
    assert {i["value"] for sr in referred for i in sr["identifier"]} >= {"follow-up-stay-1", "ref-1"}
    assert "Leaving acute hospital for skilled nursing on 2024-01-04" in referral["text"]["div"]
    assert section(doc, "48765-2")["emptyReason"]["coding"][0]["code"] == "unavailable"  # allergies: the EHR's
    assert section(doc, "10160-0")["emptyReason"]["coding"][0]["code"] == "unavailable"  # medications
    urls = set(held)
    refs = json.dumps(doc).split('"reference": "')[1:]
    assert all(r.split('"', 1)[0] in urls for r in refs)  # every reference resolves inside the document
    custodian = held[comp["custodian"]["reference"]]
    assert custodian["resourceType"] == "Organization"  # the hospital the person leaves


def test_there_is_no_summary_for_a_move_that_is_not_a_hand_off() -> None:
    with pytest.raises(NoSuchMove, match="there is no move 3"):
        transfer_summary(journey_case(), 3, "R4", SYSTEM)


@pytest.fixture
def stored(tmp_path: Path) -> tuple[str, Case]:
    url = f"sqlite:///{tmp_path / 'toc.db'}"
    case = journey_case()
    with open_store(url) as store, store.session() as s:
        save_case(s, case, enqueue=False)
    return url, case


def test_the_transitions_command_prints_the_documents(stored: tuple[str, Case]) -> None:
    url, case = stored
    env = {"FHIR_CM_DATABASE_URL": url, "FHIR_CM_IDENTIFIER_SYSTEM": SYSTEM}
    result = CliRunner().invoke(app, ["transitions", "--case", case.id, "--document"], env=env)
    assert result.exit_code == 0, result.output
    docs = [json.loads(line) for line in result.stdout.splitlines()]
    assert [d["identifier"]["value"] for d in docs] == ["case-1-toc-stay-1", "case-1-toc-stay-2"]
    one = CliRunner().invoke(
        app, ["transitions", "--case", case.id, "--document", "--move", "2", "--fhir-version", "R5"], env=env
    )
    BundleR5.model_validate(json.loads(one.stdout))
    missing = CliRunner().invoke(app, ["transitions", "--case", case.id, "--document", "--move", "9"], env=env)
    assert missing.exit_code == 1 and "there is no move 9" in missing.output
    usage = CliRunner().invoke(app, ["transitions", "--document"], env=env)
    assert usage.exit_code == 2


@pytest.mark.server
async def test_written_to_the_server_and_found_by_the_receiving_provider(
    store: Store, raw: AsyncFhirClient, settings: Settings
) -> None:
    case = journey_case(id=f"case-toc-{settings.identifier_system[-8:]}")
    await raw.update({"resourceType": "Patient", "id": case.patient.id, "active": True}, versioned=False)
    pushed = await push_cases(store, raw, settings, [case])
    assert pushed.ok, pushed.failures
    written = await write_transfer_summary(store, raw, settings, case.id, 1)
    assert written.created
    again = await write_transfer_summary(store, raw, settings, case.id, 1)
    assert (again.bundle_id, again.document_reference_id) == (written.bundle_id, written.document_reference_id)
    found = (
        await raw.search("DocumentReference")
        .where("patient", f"Patient/{case.patient.id}")
        .where("type", "http://loinc.org|18761-7")
        .fetch_all()
    )
    mine = [d for d in found if any(i.get("system") == settings.identifier_system for i in d.get("identifier", []))]
    assert [d["id"] for d in mine] == [written.document_reference_id]
    bundle = await raw.read("Bundle", written.bundle_id)
    assert bundle["type"] == "document" and bundle["entry"][0]["resource"]["resourceType"] == "Composition"
    assert mine[0]["content"][0]["attachment"]["url"] == f"Bundle/{written.bundle_id}"


@pytest.mark.server
def test_hapi_validates_the_document(hapi_r4: Any) -> None:
    """HAPI's own validator (``Bundle/$validate``, base R4 rules and the document invariants) finds no error."""
    import httpx

    doc = transfer_summary(journey_case(), 1, "R4", SYSTEM)
    response = httpx.post(
        f"{hapi_r4.base_url}/Bundle/$validate", json=doc, timeout=120, headers={"Content-Type": "application/fhir+json"}
    )
    outcome = response.json()
    errors = [i for i in outcome.get("issue", []) if i.get("severity") in ("error", "fatal")]
    assert outcome["resourceType"] == "OperationOutcome" and errors == [], errors[:5]


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_every_narrative_is_xml_whatever_characters_the_case_holds(version: str) -> None:
    """U+FFFE and U+FFFF escape nothing (the domain refuses control characters): XML cannot hold them, and a server refuses the whole document."""
    from xml.etree import ElementTree

    odd = "Ann \ufffe<needs> \uffffhelp & 'support'"
    case = journey_case(plan_summary=odd)
    data = case.model_dump()
    data["needs"][0]["finding"] = odd
    doc = transfer_summary(
        Case.model_validate(data), 1, version, SYSTEM, now=dt.datetime(2024, 1, 4, 12, tzinfo=dt.UTC)
    )

    divs = [s["text"]["div"] for s in doc["entry"][0]["resource"]["section"]]
    divs += [e["resource"]["text"]["div"] for e in doc["entry"] if "text" in e["resource"]]
    assert any("Ann \ufffd&lt;needs&gt; \ufffdhelp &amp;" in div for div in divs)
    for div in divs:
        ElementTree.fromstring(div)  # raises on what XML cannot hold


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_a_patient_and_a_practitioner_sharing_an_id_keep_their_own_names(version: str) -> None:
    # Servers number each resource type on its own: Patient/1 and Practitioner/1 are two people.
    case = journey_case(
        patient=Party(kind="patient", id="1", name="Ann Example"),
        case_manager=Party(kind="practitioner", id="1", name="Casey Manager"),
    )
    doc = transfer_summary(case, 1, version, SYSTEM, now=dt.datetime(2024, 1, 4, 12, tzinfo=dt.UTC))

    named = {
        (r["resourceType"], r["identifier"][0]["value"]): r["name"][0]["text"]
        for r in resources(doc).values()
        if r["resourceType"] in ("Patient", "Practitioner")
    }
    assert named[("Patient", "1")] == "Ann Example"
    assert named[("Practitioner", "1")] == "Casey Manager"


@pytest.mark.parametrize("version", ["R4", "R5"])
def test_outside_parties_are_in_the_document_at_their_own_server_and_author_nothing(version: str) -> None:
    # Another server's practitioner manages the case and its GP is on the team, under ids local
    # records share: the document names them where they are, and makes up no local record for them.
    other = "https://other.example/fhir"
    far = Party(kind="practitioner", id="cm-1", name="Dr Far Away", server=other)
    case = journey_case(case_manager=far)
    gp = Party(kind="practitioner", id="gp-1", name="Dr Elsewhere", server=other)
    case = case.model_copy(update={"team": [*case.team, TeamMember(id="tm-gp", role="primary-care", party=gp)]})

    doc = transfer_summary(case, 1, version, SYSTEM, now=dt.datetime(2024, 1, 4, 12, tzinfo=dt.UTC))

    held = resources(doc)
    assert held[f"{other}/Practitioner/gp-1"] == {
        "resourceType": "Practitioner",
        "id": "gp-1",
        "name": [{"text": "Dr Elsewhere"}],
    }
    assert held[f"{other}/Practitioner/cm-1"]["name"] == [{"text": "Dr Far Away"}]
    ours = [r for r in held.values() if r["resourceType"] == "Practitioner" and "identifier" in r]
    assert [i["value"] for r in ours for i in r["identifier"]] == ["cm-1"]  # the local one of the team, only
    author = held[doc["entry"][0]["resource"]["author"][0]["reference"]]
    assert author["resourceType"] == "Device"  # the outside manager wrote none of it
    refs = json.dumps(doc).split('"reference": "')[1:]
    assert all(r.split('"', 1)[0] in held for r in refs)  # every reference resolves inside the document
