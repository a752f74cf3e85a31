"""Provenance for what the adapter writes, so a hospital can see who changed what (issue 4, point 6).

Every pushed transaction carries one Provenance per kind of change in it (CREATE, UPDATE): ``target``
is every resource written, ``recorded`` the time, and the agent is the adapter itself — a Device
found by its business identifier — acting ``onBehalfOf`` the case's manager.

R4 Provenance has no ``identifier``, so a conditional create cannot make it idempotent; it gets a
stable id instead (see ``_identity``), derived from the case, the activity and the content written.
A transaction re-sent after a lost answer therefore rewrites the same Provenance rather than adding
a second one.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from typing import Any

from .. import __version__
from ..domain import Case
from ..mapping import ResourceKey, party_reference

__all__ = ["ADAPTER_DEVICE", "Activity", "device_resource", "provenance_id", "provenance_resource"]

#: The business identifier value of the adapter's Device (in the configured identifier system).
ADAPTER_DEVICE = "fhir-cm-adapter"

DATA_OPERATION = "http://terminology.hl7.org/CodeSystem/v3-DataOperation"
PARTICIPANT_TYPE = "http://terminology.hl7.org/CodeSystem/provenance-participant-type"

Activity = str  # "CREATE" or "UPDATE"


def device_key() -> ResourceKey:
    return ResourceKey("Device", ADAPTER_DEVICE)


def device_resource(identifier_system: str, version: str) -> dict[str, Any]:
    """The adapter as a Device (R4 ``deviceName``, R5 ``name``)."""
    name = {"type": "user-friendly-name"}
    names = (
        {"deviceName": [{"name": "fhir-cm", **name}]} if version == "R4" else {"name": [{"value": "fhir-cm", **name}]}
    )
    return {
        "resourceType": "Device",
        "identifier": [{"system": identifier_system, "value": ADAPTER_DEVICE}],
        **names,
        "version": [{"value": __version__}],
    }


def provenance_id(case_id: str, activity: Activity, written: Iterable[tuple[ResourceKey, str]]) -> str:
    """A stable id from the case, the activity and ``(key, content hash)`` of every resource written."""
    h = hashlib.sha256(f"{case_id}\n{activity}\n".encode())
    for key, digest in sorted(written):
        h.update(f"{key.type}|{key.value}|{digest}\n".encode())
    return "cm-prov-" + h.hexdigest()[:40]


def provenance_resource(
    case: Case,
    activity: Activity,
    targets: Iterable[str],
    device_reference: str,
    *,
    resource_id: str,
    recorded: dt.datetime | None = None,
) -> dict[str, Any]:
    """A Provenance saying the adapter, on behalf of the case manager, did ``activity`` to ``targets``;
    an outside case manager (another server's practitioner) asked for none of it, and is not named."""
    agent: dict[str, Any] = {
        "type": {"coding": [{"system": PARTICIPANT_TYPE, "code": "author", "display": "Author"}]},
        "who": {"reference": device_reference, "display": "fhir-cm"},
    }
    if case.case_manager is not None and not case.case_manager.outside:
        agent["onBehalfOf"] = party_reference(case.case_manager)
    when = (recorded or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    return {
        "resourceType": "Provenance",
        "id": resource_id,
        "target": [{"reference": t} for t in targets],
        "recorded": when.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        "activity": {"coding": [{"system": DATA_OPERATION, "code": activity}]},
        "agent": [agent],
    }
