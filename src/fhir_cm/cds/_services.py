"""The services on offer (``mappings/cds-hooks.json``), and the data a hook call reads.

A service declares prefetch templates; the EHR fills what it can. What it leaves out (a key absent
or ``null``) is read from the ``fhirServer`` the call names with the ``fhirAuthorization`` token —
only over https (or loopback http), so a caller cannot make fhir-cm send a token elsewhere in the
clear. With neither prefetch nor a server, the service answers from what it has.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

from ..errors import FhirCmError
from ..fhir import AsyncFhirClient, BearerAuth, FhirError, ResourceNotFound, safe_for_tokens
from ..terminology import mappings_dir
from ._models import HookRequest, Service, Services

__all__ = ["CdsRequestError", "catalogue", "context_patient", "gather", "service", "settings_of"]

#: The most pages of one prefetch query fetched from the EHR's server.
MAX_PAGES = 10
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")


class CdsRequestError(FhirCmError):
    """The hook call cannot be answered as sent (the message says why)."""


@functools.cache
def settings_of() -> dict[str, Any]:
    """``mappings/cds-hooks.json``, read once."""
    data: dict[str, Any] = json.loads((mappings_dir() / "cds-hooks.json").read_text(encoding="utf-8"))
    return data


def catalogue() -> Services:
    """Discovery: every service, its hook and its prefetch templates."""
    return Services(services=[Service.model_validate(s) for s in settings_of()["services"]])


def service(service_id: str) -> Service | None:
    return next((s for s in catalogue().services if s.id == service_id), None)


def context_patient(request: HookRequest) -> str:
    """``context.patientId``, the FHIR id of the patient: it goes into the prefetch queries read from
    the EHR's server, so anything else (a reference ``Patient/1``, an ``&`` adding a parameter) is the
    EHR's mistake, refused as such rather than sent (or failing as an error of ours)."""
    patient_id = request.context.get("patientId")
    if not isinstance(patient_id, str) or not patient_id:
        raise CdsRequestError("context.patientId is required")
    if not _FHIR_ID.fullmatch(patient_id):
        raise CdsRequestError("context.patientId must be a FHIR id (1-64 of A-Z a-z 0-9 - .)")
    return patient_id


def _bundle_resources(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, Mapping):
        return []
    if value.get("resourceType") == "Bundle":
        return [
            dict(e["resource"])
            for e in value.get("entry") or ()
            if isinstance(e, Mapping) and isinstance(e.get("resource"), Mapping)
        ]
    return [dict(value)] if "resourceType" in value else []


async def gather(
    request: HookRequest, svc: Service, *, verify: bool | str = True
) -> tuple[dict[str, list[dict[str, Any]]], list[str]]:
    """The resources of each prefetch key: as prefetched, else fetched with the call's token.

    Returns the resources by key and the keys that could not be had (no prefetch, no server or token).
    """
    patient_id = context_patient(request)
    found: dict[str, list[dict[str, Any]]] = {}
    missing: list[str] = []
    given = request.prefetch or {}
    for key in svc.prefetch:
        if given.get(key) is not None:
            found[key] = _bundle_resources(given[key])
        else:
            missing.append(key)
    if not missing:
        return found, []
    server, auth = request.fhirServer, request.fhirAuthorization
    if not server or auth is None:
        return found, missing
    if not safe_for_tokens(server):
        raise CdsRequestError("fhirServer must be an https URL: the access token is not sent in the clear")
    async with AsyncFhirClient(
        server, auth=BearerAuth(auth.access_token), verify=verify, enforce_capabilities=False
    ) as client:
        for key in missing:
            query = svc.prefetch[key].replace("{{context.patientId}}", patient_id)
            try:
                found[key] = await _fetch(client, query)
            except FhirError as exc:
                raise CdsRequestError(f"the EHR's server refused the {key} query ({type(exc).__name__})") from None
    return found, []


async def _fetch(client: AsyncFhirClient, query: str) -> list[dict[str, Any]]:
    path, _, params = query.partition("?")
    if not params and "/" in path:
        rtype, rid = path.split("/", 1)
        try:
            return [await client.read(rtype, rid)]
        except ResourceNotFound:
            return []
    search = client.search(path).count(200)
    for name, value in parse_qsl(params):
        search = search.where(name, value)
    out: list[dict[str, Any]] = []
    pages = 0
    async for page in search.pages():
        out += [r for r in page.matches if r.get("resourceType") == path]
        pages += 1
        if pages >= MAX_PAGES:
            break
    return out
