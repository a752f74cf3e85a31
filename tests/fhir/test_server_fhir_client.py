"""The client over real HTTP against a real R4 server (sekmet-fhir, started in-process)."""

from __future__ import annotations

import gc
import json
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.fhir import (
    AsyncFhirClient,
    BundleEntry,
    FhirClient,
    FhirRelease,
    ResourceGone,
    UnsafeLink,
    VersionConflict,
)
from tests.sync.faulty_proxy import faulty_proxy

pytestmark = pytest.mark.server

SYSTEM = "urn:fhir-cm:test"


@pytest.fixture
async def fhir(fhir_server: str) -> AsyncIterator[AsyncFhirClient]:
    async with AsyncFhirClient(fhir_server) as client:
        yield client


def tag() -> str:
    """A fresh identifier value: the server is shared by the whole session."""
    return uuid.uuid4().hex


def patient(value: str) -> dict[str, Any]:
    return {"resourceType": "Patient", "identifier": [{"system": SYSTEM, "value": value}], "name": [{"family": "Test"}]}


def careplan(patient_ref: str, value: str, status: str = "active") -> dict[str, Any]:
    return {
        "resourceType": "CarePlan",
        "identifier": [{"system": SYSTEM, "value": value}],
        "status": status,
        "intent": "plan",
        "subject": {"reference": patient_ref},
    }


async def test_create_read_update_vread_delete(fhir: AsyncFhirClient) -> None:
    pat = await fhir.create(patient(tag()))
    created = await fhir.create(careplan(f"Patient/{pat.id}", tag()))
    assert (created.status, created.created, created.version_id) == (201, True, "1")
    assert created.etag == 'W/"1"' and created.location is not None

    current = await fhir.read("CarePlan", created.id or "")
    current["status"] = "on-hold"
    updated = await fhir.update(current)  # If-Match W/"1" from meta.versionId
    assert (updated.status, updated.version_id) == (200, "2")

    first = await fhir.vread("CarePlan", created.id or "", "1")
    assert (first["status"], first["meta"]["versionId"]) == ("active", "1")

    deleted = await fhir.delete("CarePlan", created.id or "")
    assert deleted.ok
    with pytest.raises(ResourceGone):
        await fhir.read("CarePlan", created.id or "")


async def test_a_stale_version_is_a_conflict(fhir: AsyncFhirClient) -> None:
    pat = await fhir.create(patient(tag()))
    stale = await fhir.read("Patient", pat.id or "")
    await fhir.update({**stale, "active": True})

    with pytest.raises(VersionConflict):
        await fhir.update({**stale, "active": False})
    assert (await fhir.read("Patient", pat.id or ""))["active"] is True


async def test_conditional_create_twice_makes_one_resource(fhir: AsyncFhirClient) -> None:
    value = tag()
    criteria = {"identifier": f"{SYSTEM}|{value}"}

    first = await fhir.create(patient(value), if_none_exist=criteria)
    second = await fhir.create(patient(value), if_none_exist=criteria)

    assert (first.created, second.created) == (True, False)
    assert first.id == second.id
    assert [p["id"] for p in await fhir.search("Patient", identifier=f"{SYSTEM}|{value}").fetch_all()] == [first.id]


async def test_conditional_update_creates_then_updates(fhir: AsyncFhirClient) -> None:
    value = tag()
    criteria = f"identifier={SYSTEM}|{value}"

    made = await fhir.conditional_update(patient(value), criteria)
    again = await fhir.conditional_update({**patient(value), "active": False}, criteria)

    assert (made.created, again.created, again.id, again.version_id) == (True, False, made.id, "2")


async def test_json_patch(fhir: AsyncFhirClient) -> None:
    pat = await fhir.create(patient(tag()))
    task = await fhir.create(
        {"resourceType": "Task", "status": "requested", "intent": "order", "for": {"reference": f"Patient/{pat.id}"}}
    )

    patched = await fhir.patch(
        "Task", task.id or "", [{"op": "replace", "path": "/status", "value": "accepted"}], version_id=task.version_id
    )

    assert patched.version_id == "2" and patched.resource is not None and patched.resource["status"] == "accepted"


async def test_transaction_rewrites_urn_uuid_references(fhir: AsyncFhirClient) -> None:
    urn = f"urn:uuid:{uuid.uuid4()}"
    value = tag()
    entries = [
        BundleEntry.create(careplan(urn, value)),
        BundleEntry.create(patient(value), full_url=urn, if_none_exist={"identifier": f"{SYSTEM}|{value}"}),
        BundleEntry.create(
            {
                "resourceType": "Goal",
                "lifecycleStatus": "active",
                "description": {"text": "walk daily"},
                "subject": {"reference": urn},
            }
        ),
    ]

    result = await fhir.transaction(entries)

    assert (result.mode, result.ok) == ("transaction", True)
    plan, pat, goal = result.entries
    assert [e.resource_type for e in result.entries] == ["CarePlan", "Patient", "Goal"]
    assert all(e.status == 201 and e.version_id == "1" for e in result.entries)
    stored = await fhir.read("CarePlan", plan.id or "")
    assert stored["subject"]["reference"] == f"Patient/{pat.id}"
    assert (await fhir.read("Goal", goal.id or ""))["subject"]["reference"] == f"Patient/{pat.id}"


def task_for(patient_id: str | None) -> dict[str, Any]:
    return {
        "resourceType": "Task",
        "status": "requested",
        "intent": "order",
        "for": {"reference": f"Patient/{patient_id}"},
    }


async def test_paging_across_three_pages(fhir: AsyncFhirClient) -> None:
    pat = await fhir.create(patient(tag()))
    made = await fhir.batch([BundleEntry.create(task_for(pat.id)) for _ in range(7)])
    assert made.ok

    pages = [p async for p in fhir.search("Task", patient=f"Patient/{pat.id}").count(3).pages()]

    assert [len(p.matches) for p in pages] == [3, 3, 1]
    assert sorted(t["id"] for p in pages for t in p.matches) == sorted(e.id for e in made.entries)


async def test_responses_read_are_freed_as_soon_as_dropped_without_the_cycle_collector(
    fhir: AsyncFhirClient,
) -> None:
    """httpx ties each response to its stream in a reference cycle; the client cuts it once the body
    is read, so a long pull does not keep its pages (100–400 KB each) until the collector's next pass."""
    pat = await fhir.create(patient(tag()))
    made = await fhir.batch([BundleEntry.create(task_for(pat.id)) for _ in range(5)])
    assert made.ok
    gc.collect()
    gc.disable()
    try:
        held_before = {id(o) for o in gc.get_objects() if type(o) is httpx.Response}  # by other fixtures
        pages = [p async for p in fhir.search("Task", patient=f"Patient/{pat.id}").count(2).pages()]
        response = await fhir.send_raw("GET", f"{fhir.base_url}/Patient/{pat.id}")
        read = weakref.ref(response)
        assert response.json()["id"] == pat.id
        del response
        alive = [o for o in gc.get_objects() if type(o) is httpx.Response and id(o) not in held_before]
    finally:
        gc.enable()
    assert [len(p.matches) for p in pages] == [2, 2, 1]
    assert read() is None
    assert alive == []


async def test_history_pages_newest_first(fhir: AsyncFhirClient) -> None:
    pat = await fhir.create(patient(tag()))
    for active in (True, False):
        current = await fhir.read("Patient", pat.id or "")
        await fhir.update({**current, "active": active})

    versions = [e["resource"]["meta"]["versionId"] async for e in fhir.history("Patient", pat.id, count=1)]

    assert versions == ["3", "2", "1"]


async def test_revinclude_and_validated_models(fhir: AsyncFhirClient) -> None:
    pat = await fhir.create(patient(tag()))
    plan = await fhir.create(careplan(f"Patient/{pat.id}", tag()))
    await fhir.create(
        {
            "resourceType": "Provenance",
            "target": [{"reference": f"CarePlan/{plan.id}"}],
            "recorded": "2025-03-14T09:00:00Z",
            "agent": [{"who": {"reference": f"Patient/{pat.id}"}}],
        }
    )

    search = fhir.search("CarePlan", patient=f"Patient/{pat.id}").revinclude("Provenance:target").validated()
    page = await anext(search.pages())

    assert await fhir.release() is FhirRelease.R4
    assert [type(r).__name__ for r in page.matches] == ["CarePlan"]
    assert [type(r).__name__ for r in page.included] == ["Provenance"]
    assert page.quarantined == []


def test_the_blocking_client_and_the_cli_against_the_server(fhir_server: str) -> None:
    with FhirClient(fhir_server) as blocking:
        made = blocking.create(patient(tag()))
        assert blocking.read("Patient", made.id or "")["id"] == made.id

    result = CliRunner().invoke(app, ["capabilities", "--fhir-base", fhir_server, "--json"])

    assert result.exit_code == 0, result.output
    view = json.loads(result.stdout)
    assert view["fhir_version"] == "4.0.1" and view["transaction"] is True
    assert {row["type"]: row["declared"] for row in view["types"]}["CarePlan"] is True


async def test_a_next_link_to_the_servers_own_address_behind_a_proxy_is_refused_naming_both_origins(
    fhir: AsyncFhirClient, fhir_server: str
) -> None:
    # Behind a proxy the server writes its own address into its paging links; a bearer token must
    # not follow them. The refusal said only "leaves the FHIR server's origin", which left people
    # guessing what to correct.
    value = tag()
    for _ in range(2):
        await fhir.create(patient(value))
    upstream = httpx.URL(fhir_server)
    async with faulty_proxy(fhir_server.removesuffix("/fhir"), rate=0.0) as (proxy_root, _):
        async with AsyncFhirClient(f"{proxy_root}/fhir") as proxied:
            pages = proxied.search("Patient").where("identifier", f"{SYSTEM}|{value}").count(1).pages()
            first = await anext(pages)
            with pytest.raises(UnsafeLink) as caught:
                await anext(pages)

    assert len(first.matches) == 1
    proxy = httpx.URL(proxy_root)
    assert str(caught.value) == (
        f"next link leaves the FHIR server's origin (http://127.0.0.1:{upstream.port}, not "
        f"http://127.0.0.1:{proxy.port}); not followed: the server names itself by another address than the "
        "configured base"
    )
