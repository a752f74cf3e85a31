"""``find_by_identifier`` against real servers: one OR search per type and chunk finds the keys
matched once, and leaves out those matched twice or not at all."""

from __future__ import annotations

import uuid

import pytest

from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import ResourceKey
from fhir_cm.sync import _identity
from fhir_cm.sync._identity import find_by_identifier

pytestmark = pytest.mark.server


async def test_keys_matched_once_are_found_in_chunks_and_others_left_out(
    fhir_server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    system = f"urn:fhir-cm:test:{uuid.uuid4().hex}"
    monkeypatch.setattr(_identity, "FIND_CHUNK", 3)  # several chunks, and a last one not full
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as raw:
        patient = await raw.create({"resourceType": "Patient", "identifier": [{"system": system, "value": "p"}]})
        made: dict[str, str] = {}
        for value in ["a", "b", "c", "d", "twice", "twice"]:
            episode = {
                "resourceType": "EpisodeOfCare",
                "status": "active",
                "identifier": [{"system": system, "value": value}, {"system": "urn:other", "value": "a"}],
                "patient": {"reference": f"Patient/{patient.id}"},
            }
            made[value] = str((await raw.create(episode)).id)
        keys = [ResourceKey("EpisodeOfCare", v) for v in ["a", "b", "twice", "c", "absent", "d", "e"]]

        found = await find_by_identifier(raw, system, keys)

    assert {k.value: r["id"] for k, r in found.items()} == {v: made[v] for v in ["a", "b", "c", "d"]}
