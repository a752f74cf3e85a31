"""The services on offer (``mappings/cds-hooks.json``), and the data a hook call reads.

A service declares prefetch templates; the EHR fills what it can. What it leaves out (a key absent
or ``null``) is read from the ``fhirServer`` the call names with the ``fhirAuthorization`` token —
only over https (or loopback http), so a caller cannot make fhir-cm send a token elsewhere in the
clear. With neither prefetch nor a server, the service answers from what it has. A key the EHR could
not prefetch (an OperationOutcome in its place, as CDS Hooks 2.0 has it say so) or a query its server
refuses (a token whose scopes leave a type out) is a key *failed*: the others still answer, as the
specification lets a service proceed without data it cannot have; the cards say what may follow
from data that is missing (``_cards``).

The screening panels are the eligibility rules' (``screens.panels``): a prefetch template writes
``{{rules.screens.panels}}`` where it asks for them, filled in from the rules when the file is read
with the panels and the questions some answer of which says a need (``screens.codes``: an answer
recorded with no panel is a screen too), so a panel added there is prefetched too. A template listing Observation codes itself must list every
panel, or the file is refused naming what it leaves out: a screen of a panel not prefetched was
never seen by the service, its patient told nothing.

A screen recorded as Gravity's and US Core's SDOH assessments record it is a panel whose answers are
member Observations (``hasMember``); the template asks for the panels' and their questions' codes,
so the members the EHR did not send with them (a section, an item coded otherwise) are read from its
server by id (``Observation?patient=…&_id=…``), one query for the call (``MEMBER_BATCH`` ids to a
query), and an answer saying a need in one counts. An answer recorded with no panel is a screen of
its own (``identify.PatientFacts.screened``).
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import httpx
from pydantic import BaseModel, Field

from ..errors import FhirCmError
from ..fhir import AsyncFhirClient, BearerAuth, FhirError, ResourceNotFound, RetryPolicy, safe_for_tokens
from ..identify import ANSWER, fact_of, load_rules, members_of
from ..terminology import mappings_dir
from ._models import HookRequest, Service, Services

__all__ = [
    "CdsConfigError",
    "CdsDataUnavailable",
    "CdsRequestError",
    "Gathered",
    "catalogue",
    "context_patient",
    "gather",
    "service",
    "settings_of",
]

_log = logging.getLogger(__name__)

#: The most pages of one prefetch query fetched from the EHR's server.
MAX_PAGES = 10
_FHIR_ID = re.compile(r"[A-Za-z0-9\-.]{1,64}")
#: A prefetch template's token for the eligibility rules' screening panels and their questions
#: (``system|code,...``).
PANELS = "{{rules.screens.panels}}"
#: The name member Observations read by id are had (and failed) under, as a prefetch key's.
MEMBERS = "screen answers"
#: Member Observations read per query (their ids in the URL).
MEMBER_BATCH = 50
#: How far below a panel members are read (its answers, its sections' answers, one level more).
MEMBER_DEPTH = 3


class CdsRequestError(FhirCmError):
    """The hook call cannot be answered as sent (the message says why)."""


class CdsDataUnavailable(FhirCmError):
    """The data the answer needs could be had neither from the prefetch nor from the EHR's server (the
    message says which and why): CDS Hooks 2.0 has the service answer 412 Precondition Failed."""


class CdsConfigError(FhirCmError):
    """``mappings/cds-hooks.json`` disagrees with the eligibility rules (the message says where)."""


@functools.cache
def settings_of() -> dict[str, Any]:
    """``mappings/cds-hooks.json``, read once, its prefetch templates' ``{{rules.screens.panels}}``
    filled in with the eligibility rules' panels and their questions (``CdsConfigError`` where a
    template leaves a panel out)."""
    data: dict[str, Any] = json.loads((mappings_dir() / "cds-hooks.json").read_text(encoding="utf-8"))
    screens = load_rules().screens
    panels = list(screens.panels)
    for svc in data.get("services") or ():
        prefetch = svc.get("prefetch") or {}
        for key, template in prefetch.items():
            prefetch[key] = template.replace(PANELS, ",".join(screens.codes))
            _asks_for_every_panel(str(svc.get("id")), key, prefetch[key], panels)
    return data


def _asks_for_every_panel(service_id: str, key: str, template: str, panels: list[str]) -> None:
    """A template searching Observations by ``code`` must take in every screening panel (a code
    written without its system matches a panel of that code in any system)."""
    path, _, query = template.partition("?")
    if path != "Observation":
        return
    codes = {c for name, value in parse_qsl(query) if name == "code" for c in value.split(",")}
    if not codes:
        return
    missing = [p for p in panels if p not in codes and p.partition("|")[2] not in codes]
    if missing:
        raise CdsConfigError(
            f"cds-hooks.json: the {key!r} prefetch of {service_id} leaves out the screening panel(s) "
            f"{', '.join(missing)} of eligibility-rules.json; write code={PANELS} to ask for the rules' panels"
        )


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


class Gathered(BaseModel):
    """The data of one hook call: the resources of each prefetch key had, the keys not had (neither
    prefetched nor a server and token to read them from) and those failed, each with why."""

    found: dict[str, list[dict[str, Any]]] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)
    failed: dict[str, str] = Field(default_factory=dict)
    bases: list[str] = Field(
        default_factory=list,
        description="The EHR's server (the call's fhirServer): an absolute reference elsewhere names another server's "
        "resource, not its own (``https://other.example/fhir/Patient/1`` is not the patient of the call).",
    )

    @property
    def resources(self) -> list[dict[str, Any]]:
        return [r for rs in self.found.values() for r in rs]


async def gather(request: HookRequest, svc: Service, *, deadline: float, verify: bool | str = True) -> Gathered:
    """The resources of each prefetch key: as prefetched, else fetched with the call's token; a key
    whose query fails is named failed and the others are still read.

    The EHR waits for the answer in the clinician's workflow (CDS Hooks asks for one "on the order of
    500 ms"), so what is read from its server is read within ``deadline`` seconds in all
    (``FHIR_CM_CDS_DEADLINE``): the queries go at once, each request may take the whole budget and is
    sent again only where the wait fits in it (``_retry_within``); what is not had by then is failed.
    The FHIR client's own retries (seconds of back-off, for the pushes and pulls nobody waits on) held
    a call on a server that was down for ~11 s, and on one that never answered for minutes."""
    patient_id = context_patient(request)
    out = Gathered()
    given = request.prefetch or {}
    if request.fhirServer:
        out.bases.append(request.fhirServer)
    for key in svc.prefetch:
        value = given.get(key)
        if isinstance(value, Mapping) and value.get("resourceType") == "OperationOutcome":
            out.failed[key] = f"the EHR could not prefetch {key}"  # and says so, sparing the service a query
        elif value is not None:
            out.found[key] = _bundle_resources(value)
        else:
            out.missing.append(key)
    server, auth = request.fhirServer, request.fhirAuthorization
    if (not out.missing and not _members_wanted(out)) or not server or auth is None:
        return out
    if not safe_for_tokens(server):
        raise CdsRequestError("fhirServer must be an https URL: the access token is not sent in the clear")
    async with AsyncFhirClient(
        server,
        auth=BearerAuth(auth.access_token),
        verify=verify,
        enforce_capabilities=False,
        timeout=httpx.Timeout(deadline),
        retry=_retry_within(deadline),
    ) as client:
        try:
            async with asyncio.timeout(deadline):
                await _read_missing(client, svc, out, patient_id)
                await _read_members(client, out, patient_id)
        except TimeoutError:  # what was under way is cancelled; what was had stays
            late = out.missing or [MEMBERS]
            for key in late:
                out.failed[key] = f"the EHR's server did not answer {_query(key)} within {deadline:g} s"
            _log.warning("CDS Hooks: the EHR's server did not answer within %g s (%s)", deadline, ", ".join(late))
        out.missing = []
    return out


def _retry_within(deadline: float) -> RetryPolicy:
    """One more send of a request that failed, after a short wait, where the wait fits in ``deadline``
    (a 429's ``Retry-After`` of seconds does not): a server briefly refusing is still read in time."""
    return RetryPolicy(max_attempts=2, backoff_base=min(0.2, deadline / 10), backoff_max=0.5, max_wait=deadline)


async def _read_missing(client: AsyncFhirClient, svc: Service, out: Gathered, patient_id: str) -> None:
    """The keys not prefetched, read at once (the call waits for the slowest, not for their sum) and
    kept in the order of the service's templates; ``out.missing`` is emptied as they are had."""

    async def read(key: str) -> tuple[str, list[dict[str, Any]] | FhirError]:
        try:
            return key, await _fetch(client, svc.prefetch[key].replace("{{context.patientId}}", patient_id))
        except FhirError as exc:
            return key, exc

    results = dict(await asyncio.gather(*(read(key) for key in out.missing)))
    for key in out.missing:
        result = results[key]
        if isinstance(result, FhirError):
            out.failed[key] = _why(key, result)
            _log.warning("CDS Hooks: %s", out.failed[key])  # the key and what happened: no patient data
        else:
            out.found[key] = result
    out.missing = []


def _query(key: str) -> str:
    return "the query of the screens' answers" if key == MEMBERS else f"the {key} query"


def _why(key: str, exc: FhirError) -> str:
    """Why ``key`` was not had, for the EHR and the log: the host and what happened on the network
    (a refused port, a timeout), else the kind of the server's refusal — never a query or a token."""
    if exc.status is None and exc.summary:
        return f"the EHR's server could not be reached for {_query(key)}: {exc.summary}"
    return f"the EHR's server refused {_query(key)} ({type(exc).__name__})"


async def _read_members(client: AsyncFhirClient, out: Gathered, patient_id: str) -> None:
    """Read the members of the screening panels had that were not had with them (and of their
    sections, ``MEMBER_DEPTH`` levels down), by id; a refusal is a failure of ``MEMBERS``."""
    asked: set[str] = set()
    for _level in range(MEMBER_DEPTH):
        wanted = [m for m in _members_wanted(out) if m not in asked]
        asked.update(wanted)
        try:
            for start in range(0, len(wanted), MEMBER_BATCH):
                ids = ",".join(wanted[start : start + MEMBER_BATCH])
                query = f"Observation?patient={patient_id}&_id={ids}"
                out.found.setdefault(MEMBERS, []).extend(await _fetch(client, query))
        except FhirError as exc:
            out.failed[MEMBERS] = _why(MEMBERS, exc)
            _log.warning("CDS Hooks: %s", out.failed[MEMBERS])
            return


def _members_wanted(out: Gathered) -> list[str]:
    """The ids of the members of the screening panels had (and of their sections had) that are not had."""
    rules = load_rules()
    had = {r.get("id") for r in out.resources if r.get("resourceType") == "Observation"}
    wanted: list[str] = []
    for resource in out.resources:
        fact = fact_of(resource, rules, out.bases) if resource.get("resourceType") == "Observation" else None
        if fact is not None and fact.kind in ("screen", ANSWER):
            wanted += [m for m in members_of(resource, out.bases) if m not in had and m not in wanted]
    return wanted


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
