"""The practitioners, organisations and related persons a case names, made sure to exist on the server.

A case names people and organisations by their id in the record system (the EHR): the case
manager, the referral source, the care team, the services referred to, the providers of each stay.
Servers that enforce referential integrity — HAPI does by default (``HAPI-1094 Resource
Practitioner/x not found``), as do most EHRs — refuse a resource pointing at one they do not hold,
so every case would fail. Before a case's first transaction each party is therefore:

* read as ``Type/id`` — the record system's own resource, used as it is and never modified;
* else created, minimal (our identifier and the name the case knows, nothing else), under that same
  id (``PUT Type/id``: references stay as the case spells them, and a read-back gives the same
  party), or — where the server refuses client-assigned ids (HAPI does for numeric ones) —
  conditionally on ``<system>|<id>``, so that re-runs and other stores find the same one;

and, in the last case only, the case's references are pointed at whatever the server calls it. Patients go the same way in
the push itself (they come first: a RelatedPerson must name its patient).
"""

from __future__ import annotations

import functools
import logging
import typing
from collections.abc import Iterable, Iterator
from typing import Any

from pydantic import BaseModel

from ..domain import Case, Party, PartyKind
from ..fhir import AsyncFhirClient, BundleEntry, FhirError, a_resource
from ..mapping import if_none_exist, party_reference
from ._identity import read_existing

__all__ = ["PartyKey", "case_parties", "resolve_parties"]

log = logging.getLogger(__name__)

#: ``("Practitioner", "<party id>")``: a party as the case names it.
PartyKey = tuple[str, str]


def case_parties(case: Case) -> dict[PartyKey, Party]:
    """Every local party the case names other than its own patient (resolved first, by the push
    itself), keyed as its references spell them. An outside party (``Party.server``) is another
    server's record, referenced there: the server pushed to is neither asked for it nor given one
    made up under its id."""
    parties: dict[PartyKey, Party] = {}
    for party in _walk(case):
        if party.outside or (party.kind is PartyKind.PATIENT and party.id == case.patient.id):
            continue
        rtype, rid = party_reference(party)["reference"].split("/", 1)
        known = parties.get((rtype, rid))
        if known is None or (known.name is None and party.name):
            parties[(rtype, rid)] = party
    return parties


def _walk(node: Any) -> Iterator[Party]:
    if isinstance(node, Party):
        yield node
    elif isinstance(node, BaseModel):
        for name in _holding_models(type(node)):
            yield from _walk(getattr(node, name))
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _walk(item)


@functools.cache
def _holding_models(model: type[BaseModel]) -> tuple[str, ...]:
    """The fields of ``model`` whose type can hold a model (so a party): the rest (texts, dates,
    codes) are not walked — most of a case, on every push of it."""
    return tuple(name for name, field in model.model_fields.items() if _may_hold_model(field.annotation))


def _may_hold_model(annotation: Any) -> bool:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return True
    return any(_may_hold_model(arg) for arg in typing.get_args(annotation))


def minimal_party(party: Party, rtype: str, system: str, patient_reference: str | None) -> dict[str, Any]:
    """The least a server needs to hold for a party: our identifier, the name if known (and, for a
    RelatedPerson, which FHIR requires, the patient it is related to)."""
    resource: dict[str, Any] = {"resourceType": rtype, "identifier": [{"system": system, "value": party.id}]}
    if party.name:
        resource["name"] = party.name if rtype == "Organization" else [{"text": party.name}]
    if rtype == "RelatedPerson" and patient_reference:
        resource["patient"] = {"reference": patient_reference}
    return resource


async def resolve_parties(
    client: AsyncFhirClient,
    system: str,
    wanted: Iterable[tuple[PartyKey, Party, str | None]],
    refused: dict[PartyKey, FhirError] | None = None,
) -> dict[PartyKey, str]:
    """Server ids for the ``(key, party, patient reference)`` triples: found or created.

    A party neither found nor created (the server refused, or was not reachable) is left out, the
    server's error for it in ``refused``; the caller's case then waits for a later run rather than
    sending a reference the server refuses.
    """
    parties = {key: (party, patient) for key, party, patient in wanted}
    if not parties:
        return {}
    refused = {} if refused is None else refused
    found, missing = await read_existing(client, parties, refused)
    resolved = {key: str(copy["id"]) for key, copy in found.items() if copy.get("id")}
    missing_keys = [key for key in parties if key in missing]
    under_own_id = [k for k in missing_keys if not k[1].isdigit()]
    resolved |= await _create(client, under_own_id, parties, system, refused, own_id=True)
    conditional = [k for k in missing_keys if k not in resolved]
    resolved |= await _create(client, conditional, parties, system, refused, own_id=False)
    for key in missing_keys:
        if key not in resolved:
            log.warning("the server did not create %s", a_resource(key[0]))
    return resolved


async def _create(
    client: AsyncFhirClient,
    keys: list[PartyKey],
    parties: dict[PartyKey, tuple[Party, str | None]],
    system: str,
    refused: dict[PartyKey, FhirError],
    *,
    own_id: bool,
) -> dict[PartyKey, str]:
    """Create the parties in one batch, under their own ids (``PUT``) or conditionally (``POST``)."""
    if not keys:
        return {}
    entries = []
    for rtype, rid in keys:
        resource = minimal_party(parties[(rtype, rid)][0], rtype, system, parties[(rtype, rid)][1])
        if own_id:
            entries.append(BundleEntry("PUT", f"{rtype}/{rid}", {**resource, "id": rid}))
        else:
            entries.append(BundleEntry.create(resource, if_none_exist=if_none_exist(system, rid)))
    try:
        result = await client.batch(entries, max_entries=100)
    except FhirError as exc:
        log.warning("creating %d parties failed: %s", len(entries), type(exc).__name__)
        refused |= dict.fromkeys(keys, exc)
        return {}
    made = {}
    for key, outcome in zip(keys, result.entries, strict=True):
        if outcome.ok and outcome.id:
            made[key] = outcome.id
            refused.pop(key, None)
        elif outcome.error is not None:
            refused[key] = outcome.error
    return made
