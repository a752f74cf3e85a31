"""A push to a server whose CapabilityStatement says ``conditionalCreate: false``.

The pusher finds its resources again by business identifier with conditional creates wherever the
server declares the ``identifier`` search parameter, and by a stable id (``PUT``) elsewhere. A
server that declares the parameter but says it does not do conditional creates was sent them all
the same: the client, enforcing the statement, refused the adapter's own Device before the first
case, and every push failed. The real server's own statement is given to the client with
``conditionalCreate`` false on every type.
"""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest

from fhir_cm.config import Settings
from fhir_cm.fhir import AsyncFhirClient, Capabilities
from fhir_cm.store import Store
from fhir_cm.sync import push_cases
from fhir_cm.synthetic import generate_cases
from tests.sync.faulty_proxy import faulty_proxy
from tests.sync.server_state import expected, server_state

pytestmark = pytest.mark.server


def without_conditional_create(statement: dict[str, Any]) -> dict[str, Any]:
    refusing = copy.deepcopy(statement)
    for entry in refusing["rest"][0].get("resource") or []:
        entry["conditionalCreate"] = False
    return refusing


async def test_a_server_refusing_conditional_creates_gets_stable_ids_and_a_second_push_adds_nothing(
    store: Store, raw: AsyncFhirClient, settings: Settings, fhir_server: str, system: str
) -> None:
    cases = list(generate_cases(2, seed=7331))  # patients of their own: the server is shared
    for case in cases:  # the hospital's own patient records, under the ids the cases know them by
        identifier = [{"system": system, "value": case.patient.id}]
        await raw.update({"resourceType": "Patient", "id": case.patient.id, "identifier": identifier}, versioned=False)
    caps = Capabilities.from_statement(without_conditional_create(dict((await raw.capabilities()).statement)))
    bodies: list[bytes] = []

    def record(method: str, target: str, body: bytes) -> bool:
        bodies.append(body)
        return False

    async with faulty_proxy(fhir_server.removesuffix("/fhir"), rate=0.0, when=record) as (root, proxy):
        async with AsyncFhirClient(f"{root}/fhir", capabilities=caps) as client:
            first = await push_cases(store, client, settings, cases)
            again = await push_cases(store, client, settings, cases)

    assert first.ok, first.failures
    assert again.ok and again.created == 0, again
    bundles = [json.loads(b) for b in bodies if b.startswith(b"{")]
    conditional = [e for b in bundles for e in b.get("entry") or [] if "ifNoneExist" in (e.get("request") or {})]
    assert conditional == []
    assert not any(line.startswith("POST /fhir/Device") for line in proxy.seen)
    state = await server_state(raw, system)
    assert state.counts == expected(cases, system)
