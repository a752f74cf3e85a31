"""The parties a case names, made sure of on a real server (sekmet and HAPI, which enforces
referential integrity): found and left alone, created under their own id, or created conditionally."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from fhir_cm.config import Settings
from fhir_cm.domain import Acuity, Case, Party, Period
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import Store
from fhir_cm.mapping._codes import EXT_REFERRAL_SOURCE
from fhir_cm.sync import push_cases

pytestmark = pytest.mark.server


def a_case(tag: str, manager: Party, source: Party) -> Case:
    return Case(
        id=f"case-{tag}",
        programme="health-care",
        period=Period(start=dt.date(2024, 2, 20)),
        patient=Party(kind="patient", id=f"pat-{tag}"),
        case_manager=manager,
        referral_source=source,
    )


async def practitioners(raw: AsyncFhirClient, system: str) -> list[dict]:  # type: ignore[type-arg]
    return [p async for p in raw.search("Practitioner").where("identifier", f"{system}|").count(100)]


async def test_a_party_the_server_lacks_is_created_under_its_own_id_once(
    store: Store, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    case = a_case(
        tag,
        Party(kind="practitioner", id=f"cm-{tag}", name="Ada Lovett"),
        Party(kind="organisation", id=f"org-{tag}", name="Northside Clinic"),
    )

    assert (await push_cases(store, raw, settings, [case])).ok
    again = await push_cases(store, raw, settings, [case.model_copy(update={"acuity": Acuity.HIGH})])
    assert again.ok and again.created == 0

    manager = await raw.read("Practitioner", f"cm-{tag}")
    assert manager["identifier"] == [{"system": system, "value": f"cm-{tag}"}]
    assert manager["name"] == [{"text": "Ada Lovett"}] and manager["meta"]["versionId"] == "1"
    clinic = await raw.read("Organization", f"org-{tag}")
    assert clinic["name"] == "Northside Clinic"
    [episode] = await raw.search("EpisodeOfCare").where("identifier", f"{system}|{case.id}").fetch_all()
    assert episode["careManager"]["reference"] == f"Practitioner/cm-{tag}"
    assert len(await practitioners(raw, system)) == 1


async def test_a_numeric_party_id_is_created_conditionally_and_referenced_by_the_server_s_id(
    store: Store, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    """HAPI refuses client-assigned numeric ids (they would collide with its own): the party is
    created by POST on our identifier, and the case's references follow the id the server gave."""
    tag = uuid.uuid4().hex[:10]
    numeric = str(int(uuid.uuid4().int % 10**12) + 10**12)
    case = a_case(tag, Party(kind="practitioner", id=numeric), Party(kind="organisation", id=f"org-{tag}"))

    assert (await push_cases(store, raw, settings, [case])).ok
    assert (await push_cases(store, raw, settings, [case.model_copy(update={"acuity": Acuity.HIGH})])).ok

    [manager] = await practitioners(raw, system)
    assert manager["identifier"] == [{"system": system, "value": numeric}]
    [episode] = await raw.search("EpisodeOfCare").where("identifier", f"{system}|{case.id}").fetch_all()
    assert episode["careManager"]["reference"] == f"Practitioner/{manager['id']}"


async def test_the_record_system_s_own_party_is_used_and_never_modified(
    store: Store, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    tag = uuid.uuid4().hex[:10]
    ehr = {"resourceType": "Practitioner", "id": f"cm-{tag}", "name": [{"family": "Lovett", "given": ["Ada"]}]}
    await raw.update(ehr, versioned=False)
    case = a_case(
        tag, Party(kind="practitioner", id=f"cm-{tag}", name="A. Lovett"), Party(kind="organisation", id=f"org-{tag}")
    )

    assert (await push_cases(store, raw, settings, [case])).ok

    kept = await raw.read("Practitioner", f"cm-{tag}")
    assert kept["meta"]["versionId"] == "1" and kept["name"] == ehr["name"] and "identifier" not in kept
    assert await practitioners(raw, system) == []


async def test_a_referral_source_the_server_calls_by_another_id_is_referenced_by_that_id(
    store: Store, raw: AsyncFhirClient, settings: Settings, system: str
) -> None:
    """The referral source is an extension's value, which the mapping writes as the case spells it
    (only the references it builds follow the server's ids): the push rewrites it, and a second
    push of the same case finds nothing to change."""
    tag = uuid.uuid4().hex[:10]
    numeric = str(int(uuid.uuid4().int % 10**12) + 10**12)
    case = a_case(tag, Party(kind="practitioner", id=f"cm-{tag}"), Party(kind="organisation", id=numeric))

    assert (await push_cases(store, raw, settings, [case])).ok
    again = await push_cases(store, raw, settings, [case])

    [clinic] = [o async for o in raw.search("Organization").where("identifier", f"{system}|{numeric}").count(10)]
    [episode] = await raw.search("EpisodeOfCare").where("identifier", f"{system}|{case.id}").fetch_all()
    [source] = [e for e in episode["extension"] if e["url"] == EXT_REFERRAL_SOURCE]
    assert source["valueReference"]["reference"] == f"Organization/{clinic['id']}"
    assert again.ok and again.updated == 0 and episode["meta"]["versionId"] == "1"
