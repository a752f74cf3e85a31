"""What a FHIR server holds of the resources one test pushed, found by the test's identifier system.

Every push test stamps its own identifier system (the server is shared by the session), so counting
"ours" is counting resources whose identifier is in that system. Each type is searched by
``identifier=<system>|`` (any value in the system), as the pull searches, and what comes back is
filtered here again: sekmet ignores the parameter on Goal and CareTeam and answers every resource of
the type, which the filter narrows to ours. Listing every type whole instead read all the session
had written to the shared server, each time: HAPI tests slowed as the session went on.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import case_to_resources
from fhir_cm.sync import CASE_RESOURCE_TYPES

CASE_TYPES = CASE_RESOURCE_TYPES  # a type missing here would be missing from the counts, and fail them
TYPES = (*CASE_TYPES, "Patient")


def expected(cases: Iterable[Case], system: str) -> Counter[tuple[str, str]]:
    """``(type, identifier value)`` → 1 for every resource the cases should have on the server."""
    out: Counter[tuple[str, str]] = Counter()
    for case in cases:
        out.update((k.type, k.value) for k in case_to_resources(case, "R4", system))
        out[("Patient", case.patient.id)] = 1
    return out


def _references(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node["reference"]
        for value in node.values():
            yield from _references(value)
    elif isinstance(node, list):
        for value in node:
            yield from _references(value)


@dataclass
class ServerState:
    """Our resources on the server: by ``(type, identifier value)``, as a list (duplicates show)."""

    resources: dict[tuple[str, str], list[dict[str, Any]]]

    @property
    def counts(self) -> Counter[tuple[str, str]]:
        return Counter({k: len(v) for k, v in self.resources.items()})

    def one(self, resource_type: str, value: str) -> dict[str, Any]:
        found = self.resources[(resource_type, value)]
        assert len(found) == 1, f"{resource_type} {value}: {len(found)} copies"
        return found[0]

    def versions(self) -> dict[tuple[str, str], str]:
        return {k: v[0]["meta"]["versionId"] for k, v in self.resources.items()}

    def dangling(self, elsewhere: Iterable[str] = ()) -> list[str]:
        """References from our resources to case types or Patients that name nothing on the server.

        Practitioner and Organization references point into the hospital's directory, which the
        adapter does not write, so they are not checked. ``elsewhere``: references known to resolve
        to resources without our identifier (the EHR's own Patients).
        """
        ids = {f"{t}/{r['id']}" for (t, _), copies in self.resources.items() for r in copies} | set(elsewhere)
        out = []
        for copies in self.resources.values():
            for resource in copies:
                for ref in _references(resource):
                    if ref.split("/", 1)[0] in TYPES and ref not in ids:
                        out.append(f"{resource['resourceType']} → {ref}")
        return out


async def server_state(client: AsyncFhirClient, system: str) -> ServerState:
    found: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for rtype in TYPES:
        async for resource in client.search(rtype).where("identifier", f"{system}|").count(200):
            for ident in resource.get("identifier") or ():
                if ident.get("system") == system:
                    found.setdefault((rtype, ident["value"]), []).append(resource)
    return ServerState(found)


async def provenances_for(client: AsyncFhirClient, ids: Iterable[str]) -> list[dict[str, Any]]:
    """Provenances whose targets name any of ``ids`` (``Type/id``)."""
    wanted = set(ids)
    return [
        p
        async for p in client.search("Provenance").count(200)
        if wanted & {t.get("reference") for t in p.get("target", [])}
    ]
