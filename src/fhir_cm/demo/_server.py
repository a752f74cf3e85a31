"""The FHIR-server round trip: push the demo's cases, pull them back, and read every resource back."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..config import Settings
from ..domain import Case
from ..fhir import NO_RETRY, AsyncFhirClient, FhirError, TransientError, client_from_settings
from ..jobs import pick_fhir_version, pull_client, run_pull, run_push
from ..mapping import (
    MappingError,
    ResourceKey,
    case_to_resources,
    resources_to_case,
)
from ..store import Store, queue_push, get_case
from ..sync import CASE_RESOURCE_TYPES
from ._models import DemoError, DemoServerUnavailable, Progress, ServerRoundTrip
from ._summary import additions_line


def _reason(exc: Exception) -> str:
    if isinstance(exc, FhirError):
        return exc.said()
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _failure(what: str, exc: Exception) -> DemoError:
    """The demo's error for a server's failure: one to run again later when the server was only
    unreachable, busy or failing for now."""
    kind = DemoServerUnavailable if isinstance(exc, TransientError) else DemoError
    return kind(f"{what}: {_reason(exc)}")


async def _check_server(settings: Settings) -> None:
    """Fail before anything is written when the server cannot be reached or speaks no FHIR we know."""
    try:
        # One try: a server that does not answer now fails the demo at once, with nothing written.
        async with client_from_settings(settings, enforce_capabilities=False, retry=NO_RETRY) as client:
            await client.release()
    except (FhirError, ValueError, OSError) as exc:
        raise _failure(f"FHIR server {settings.fhir_base} not usable", exc) from None


async def _round_trip(store: Store, settings: Settings, ids: list[str], say: Progress) -> ServerRoundTrip:
    """Push the demo's cases, pull them back with the transitions tracker, and read every resource back.

    The push and the pull are the jobs ``fhir-cm push --all`` and ``fhir-cm pull`` run; only the
    read-back, which checks the round trip, is the demo's own.
    """
    try:
        with store.session() as s:
            for case_id in ids:  # queued even if unchanged: a re-run against a new server sends them too
                queue_push(s, case_id)
        say(f"pushing to {settings.fhir_base} …")
        pushed = (await run_push(store, settings, everything_pending=True)).report
        if pushed.failures:
            first = pushed.failures[0]
            kind = DemoError if any(f.permanent for f in pushed.failures) else DemoServerUnavailable
            raise kind(f"push failed for {len(pushed.failures)} cases (case {first.case_id}: {first.reason})")
        say(f"  pushed {pushed.line()}")
        say("pulling back and tracking transitions …")
        pulled = await run_pull(store, settings)
        tracked = pulled.transitions
        say(
            f"  pulled {pulled.pull.fetched} resources ({pulled.pull.unchanged} unchanged); tracker: "
            f"{tracked.new_transitions} new transitions, {tracked.follow_ups_added} follow-ups and "
            f"{tracked.team_members_added} team members added"
        )
        again = None
        if tracked.changed_cases:
            again = (await run_push(store, settings, everything_pending=True)).report
            say(f"  pushed the tracker's additions: {additions_line(pulled, again)}")
        async with pull_client(settings) as client:
            version = await pick_fhir_version(client, settings)
            with store.session(read_only=True) as s:
                cases = [c for c in (get_case(s, i) for i in ids) if c is not None]
            check = await _read_back(client, cases, version, settings.identifier_system)
    except (FhirError, OSError) as exc:
        raise _failure(f"FHIR server {settings.fhir_base}", exc) from None
    return ServerRoundTrip(
        fhir_base=settings.fhir_base or "",
        push=pushed,
        pull=pulled,
        follow_up_push=again,
        **check,
    )


#: What is read back: the case's own types, and the Patient the pusher makes sure exists.
_READ_BACK_TYPES = (*CASE_RESOURCE_TYPES, "Patient")
#: The parties a push may create on the server (by identifier), whose server ids the case does not know.
_PARTY_TYPES = ("Practitioner", "Organization", "RelatedPerson")


async def _read_back(client: AsyncFhirClient, cases: list[Case], version: str, system: str) -> dict[str, Any]:
    """Find every resource of ``cases`` on the server by business identifier, and rebuild the cases from them.

    Each type is searched by ``identifier=<system>|`` and filtered here as well: tolerant servers
    ignore search parameters they do not support (sekmet does for Goal and CareTeam).
    """
    owner: dict[ResourceKey, str] = {}
    for case in cases:
        for key in case_to_resources(case, version, system):
            owner[key] = case.id
        owner[ResourceKey("Patient", case.patient.id)] = case.id
    found: dict[ResourceKey, list[dict[str, Any]]] = {}
    for rtype in _READ_BACK_TYPES:
        async for resource in client.search(rtype).where("identifier", f"{system}|").count(200):
            for ident in resource.get("identifier") or ():
                key = ResourceKey(rtype, str(ident.get("value")))
                if ident.get("system") == system and key in owner:
                    found.setdefault(key, []).append(resource)
    # The server knows each patient (and each practitioner, organisation and related person the push
    # made sure of) by an id of its own; the case knows them by the record system's id, which the
    # resource carries as its business identifier.
    patients = {
        f"Patient/{copies[0]['id']}": f"Patient/{key.value}" for key, copies in found.items() if key.type == "Patient"
    }
    for rtype in _PARTY_TYPES:
        async for resource in client.search(rtype).where("identifier", f"{system}|").count(200):
            for ident in resource.get("identifier") or ():
                if ident.get("system") == system and ident.get("value") and resource.get("id"):
                    patients.setdefault(f"{rtype}/{resource['id']}", f"{rtype}/{ident['value']}")
    per_case: dict[str, list[dict[str, Any]]] = {c.id: [] for c in cases}
    for key, copies in found.items():
        if key.type != "Patient":
            per_case[owner[key]].append(_repointed(copies[0], patients))
    differences = []
    for case in cases:
        differences += _differences(case, per_case[case.id], version, system)
    missing = [k for k in owner if k not in found]
    differences += [f"{k.type} {k.value}: not on the server" for k in missing]
    return {
        "expected": dict(sorted(Counter(k.type for k in owner).items())),
        "found": dict(sorted(Counter(k.type for k, copies in found.items() for _ in copies).items())),
        "duplicates": sum(len(copies) - 1 for copies in found.values()),
        "missing": len(missing),
        "matched": not differences and all(len(copies) == 1 for copies in found.values()),
        "differences": differences,
    }


def _repointed(node: Any, mapping: dict[str, str]) -> Any:
    """A copy of ``node`` with every ``reference`` found in ``mapping`` replaced."""
    if isinstance(node, dict):
        out = {k: _repointed(v, mapping) for k, v in node.items()}
        if isinstance(out.get("reference"), str) and out["reference"] in mapping:
            out["reference"] = mapping[out["reference"]]
        return out
    if isinstance(node, list):
        return [_repointed(v, mapping) for v in node]
    return node


def _differences(case: Case, resources: list[dict[str, Any]], version: str, system: str) -> list[str]:
    """How the case the server's copies describe differs from ``case`` (top-level fields), if at all."""
    try:
        server_case = resources_to_case(resources, version, system)
    except MappingError as exc:
        return [f"case {case.id}: the server's resources do not read as a case ({_reason(exc)})"]
    mine, theirs = case.model_dump(mode="json"), server_case.model_dump(mode="json")
    fields = [name for name in mine if mine[name] != theirs.get(name)]
    return [f"case {case.id}: {', '.join(fields)} differ"] if fields else []
