"""A single-threaded in-memory FHIR R4 server: the third kind of reference server the push is measured
against (``benchmarks/bench_push.py``), beside sekmet (SQLite) and HAPI (JPA on several threads).

What a small FHIR server must do and no more, in one process, on one thread (one asyncio loop under
uvicorn; every handler runs to completion without awaiting):

* every resource written is **validated** with its fhir.resources R4B model (a 400 OperationOutcome
  naming the field otherwise) and kept as JSON in dictionaries, with ``meta.versionId`` (1, 2, …)
  and ``meta.lastUpdated``, and every earlier version;
* ``read``, ``vread``, ``create`` (``If-None-Exist: identifier=<system>|<value>``: 0 matches
  creates, 1 answers it, more is 412), ``update`` (update-as-create with the client's id;
  ``If-Match`` checked, 412 on a stale version), ``search`` by ``identifier`` (``<system>|<value>``,
  or ``<system>|`` for any value in the system; ``,`` for OR) and ``_id`` — any other parameter is
  refused with 400, as HAPI does;
* ``delete`` (a read, or an ``If-Match`` update, of a deleted resource answers 410 Gone, as Medplum
  does; an update without ``If-Match`` writes it again);
* ``batch`` (each entry on its own) and ``transaction`` (all or nothing: every entry is checked and
  validated before any is stored; ``urn:uuid`` fullUrls become the ids the server assigns, in every
  reference of the bundle);
* a CapabilityStatement declaring the above for every R4 resource type.

Identifier matches are looked up in an index (type, system, value) → ids (and (type, system) → ids
for ``<system>|``), so a conditional create costs the same on an empty server as on a full one: what
is measured is the client.

Run ``python -m tests.memory_server``: prints ``READY <base url>`` once it accepts connections and
stops when its standard input closes. ``memory_server()`` runs it for a block.
"""

from __future__ import annotations

import datetime as dt
import os
import socket
import sys
import threading
import uuid
from collections import defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import orjson
import uvicorn
from fhir.resources.R4B import get_fhir_model_class
from pydantic import ValidationError

from tests.server_process import run_server
from tests.servers import RunningServer

__all__ = ["memory_server"]

BASE = "/fhir"
WHAT = "the in-memory FHIR test server"
STARTUP_TIMEOUT = 60.0
FHIR_JSON = b"application/fhir+json; charset=utf-8"
#: Every R4 resource type the capability statement declares (fhir.resources R4B has them all).
TYPES = (
    "Account ActivityDefinition AllergyIntolerance Appointment AuditEvent Basic Binary CarePlan CareTeam "
    "ClinicalImpression Communication CommunicationRequest Composition Condition Consent Coverage Device "
    "DiagnosticReport DocumentReference Encounter EpisodeOfCare Goal Group HealthcareService Location "
    "Medication MedicationRequest Observation Organization Patient Practitioner PractitionerRole Procedure "
    "Provenance Questionnaire QuestionnaireResponse RelatedPerson ServiceRequest Task"
).split()
SEARCH_PARAMS = ("identifier", "_id")
PAGING = ("_count", "_offset", "_format")
DEFAULT_COUNT = 100


class Refused(Exception):
    """An interaction the server refuses: its HTTP status and the OperationOutcome's text."""

    def __init__(self, status: int, code: str, text: str) -> None:
        super().__init__(text)
        self.status, self.code, self.text = status, code, text

    def outcome(self) -> dict[str, Any]:
        return {
            "resourceType": "OperationOutcome",
            "issue": [{"severity": "error", "code": self.code, "diagnostics": self.text}],
        }


class Repository:
    """Resources by type and id, every version, and the identifier index conditional creates use."""

    def __init__(self) -> None:
        self.current: dict[str, dict[str, dict[str, Any]]] = defaultdict(dict)
        self.versions: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
        self.identifiers: dict[tuple[str, str, str], set[str]] = defaultdict(set)
        self.in_system: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.deleted: set[tuple[str, str]] = set()

    def read(self, rtype: str, rid: str) -> dict[str, Any]:
        found = self.current[rtype].get(rid)
        if found is None:
            self.check_not_deleted(rtype, rid)
            raise Refused(404, "not-found", f"{rtype}/{rid} is not known")
        return found

    def check_not_deleted(self, rtype: str, rid: str) -> None:
        if (rtype, rid) in self.deleted:
            raise Refused(410, "deleted", f"{rtype}/{rid} was deleted")

    def delete(self, rtype: str, rid: str) -> None:
        """Take the resource out of the current ones (its versions stay for vread)."""
        gone = self.current[rtype].pop(rid, None)
        if gone is not None:
            self._unindex(gone)
            self.deleted.add((rtype, rid))

    def vread(self, rtype: str, rid: str, vid: str) -> dict[str, Any]:
        for version in self.versions.get((rtype, rid), ()):
            if version["meta"]["versionId"] == vid:
                return version
        raise Refused(404, "not-found", f"{rtype}/{rid} has no version {vid}")

    def matching(self, rtype: str, criteria: str) -> list[str]:
        """Ids of ``rtype`` resources matching ``identifier=…`` / ``_id=…`` criteria (AND of params, OR in a value)."""
        ids: set[str] | None = None
        for name, value in parse_qsl(criteria, keep_blank_values=True):
            if name in PAGING:
                continue
            if name not in SEARCH_PARAMS:
                raise Refused(400, "not-supported", f"unknown search parameter {name!r} for {rtype}")
            found: set[str] = set()
            for one in value.split(","):
                if name == "_id":
                    found |= {one} if one in self.current[rtype] else set()
                else:
                    system, bar, code = one.rpartition("|")
                    if bar and system and not code:  # ``<system>|``: any value in the system
                        found |= self.in_system.get((rtype, system), set())
                    else:
                        found |= self.identifiers.get((rtype, system, code), set())
            ids = found if ids is None else ids & found
        return sorted(self.current[rtype] if ids is None else ids)

    def store(self, resource: dict[str, Any], now: str) -> tuple[dict[str, Any], bool]:
        """Keep ``resource`` (id set) as a new version; ``(stored copy, created)``."""
        rtype, rid = resource["resourceType"], resource["id"]
        previous = self.current[rtype].get(rid)
        version = len(self.versions[(rtype, rid)]) + 1  # after a deletion too
        stored = {**resource, "meta": {**(resource.get("meta") or {}), "versionId": str(version), "lastUpdated": now}}
        if previous is not None:
            self._unindex(previous)
        for key in _identifier_keys(stored):
            self.identifiers[key].add(rid)
            self.in_system[key[:2]].add(rid)
        self.current[rtype][rid] = stored
        self.deleted.discard((rtype, rid))
        self.versions[(rtype, rid)].append(stored)
        return stored, previous is None

    def _unindex(self, resource: dict[str, Any]) -> None:
        for key in _identifier_keys(resource):
            self.identifiers[key].discard(resource["id"])
            self.in_system[key[:2]].discard(resource["id"])


def _identifier_keys(resource: dict[str, Any]) -> list[tuple[str, str, str]]:
    rtype = resource["resourceType"]
    return [
        (rtype, str(i.get("system", "")), str(i.get("value", "")))
        for i in resource.get("identifier") or ()
        if isinstance(i, dict)
    ]


def validate(resource: Any, rtype: str | None = None) -> None:
    """Refuse what the R4 model of its type refuses (400), or a body of another type than the URL's."""
    if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
        raise Refused(400, "invalid", "the body is not a FHIR resource")
    if rtype is not None and resource["resourceType"] != rtype:
        raise Refused(400, "invalid", f"a {resource['resourceType']} sent to the {rtype} endpoint")
    try:
        model = get_fhir_model_class(resource["resourceType"])
    except KeyError:
        raise Refused(400, "not-supported", f"unknown resource type {resource['resourceType']}") from None
    try:
        model.model_validate(resource)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise Refused(400, "structure", f"{resource['resourceType']}.{where}: {first['msg']}") from None


def _etag(resource: dict[str, Any]) -> str:
    return f'W/"{resource["meta"]["versionId"]}"'


def _version_of(if_match: str) -> str:
    return if_match.removeprefix("W/").strip('"')


def rewrite(node: Any, ids: dict[str, str]) -> None:
    """Point every ``reference`` naming a bundle fullUrl at the id the server gave that entry (the
    server's own code: it shares none with the client it serves)."""
    if isinstance(node, dict):
        ref = node.get("reference")
        if isinstance(ref, str) and ref in ids:
            node["reference"] = ids[ref]
        for value in node.values():
            if isinstance(value, dict | list):
                rewrite(value, ids)
    elif isinstance(node, list):
        for value in node:
            rewrite(value, ids)


class Server:
    """The interactions, over one ``Repository``; each returns ``(status, body, headers)``."""

    def __init__(self, base_url: str) -> None:
        self.repo = Repository()
        self.base_url = base_url

    # -- one request ----------------------------------------------------------------------------

    def handle(
        self, method: str, path: str, query: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, dict[str, str]]:
        parts = [p for p in path.split("/") if p]
        try:
            resource = orjson.loads(body) if body else None
        except orjson.JSONDecodeError:
            raise Refused(400, "invalid", "the body is not JSON") from None
        if method == "GET" and parts == ["metadata"]:
            return 200, CAPABILITIES, {}
        if method == "POST" and not parts:
            return 200, self.bundle(resource), {}
        if method == "DELETE" and len(parts) == 2 and parts[0] in TYPES:
            self.repo.delete(parts[0], parts[1])
            return 204, None, {}
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        entry = {"method": method, "url": "/".join(parts) + (f"?{query}" if query else "")}
        if headers.get("if-none-exist"):
            entry["ifNoneExist"] = headers["if-none-exist"]
        if headers.get("if-match"):
            entry["ifMatch"] = headers["if-match"]
        planned = self.plan(entry, resource, {})
        status, copy = self.apply(planned, now)
        return status, copy, _written_headers(copy) if method in ("POST", "PUT") else {}

    # -- bundles --------------------------------------------------------------------------------

    def bundle(self, bundle: Any) -> dict[str, Any]:
        if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
            raise Refused(400, "invalid", "POST to the base takes a batch or transaction Bundle")
        kind = bundle.get("type")
        entries = bundle.get("entry") or []
        now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
        if kind == "batch":
            out = []
            for entry in entries:
                try:
                    planned = self.plan(entry.get("request") or {}, entry.get("resource"), {})
                    out.append(_response(*self.apply(planned, now)))
                except Refused as refused:
                    out.append({"response": {"status": str(refused.status), "outcome": refused.outcome()}})
            return {"resourceType": "Bundle", "type": "batch-response", "entry": out}
        if kind != "transaction":
            raise Refused(400, "invalid", f"a Bundle of type {kind!r} cannot be processed")
        ids: dict[str, str] = {}
        plans = []
        for entry in entries:  # ids first (every create), so any entry may name any other
            request = entry.get("request") or {}
            plan = self.plan(request, entry.get("resource"), ids, validate_now=False)
            if entry.get("fullUrl") and plan["rtype"] and plan["id"]:
                ids[entry["fullUrl"]] = f"{plan['rtype']}/{plan['id']}"
            plans.append(plan)
        for plan in plans:  # then references, validation: all before anything is stored
            if plan["resource"] is not None:
                rewrite(plan["resource"], ids)
                validate(plan["resource"], plan["rtype"])
        return {
            "resourceType": "Bundle",
            "type": "transaction-response",
            "entry": [_response(*self.apply(p, now)) for p in plans],
        }

    # -- planning and applying ------------------------------------------------------------------

    def plan(
        self, request: dict[str, Any], resource: Any, ids: dict[str, str], *, validate_now: bool = True
    ) -> dict[str, Any]:
        """What an entry will do, checked against the repository as it is (nothing stored yet)."""
        method = str(request.get("method", "")).upper()
        url = str(request.get("url", "")).lstrip("/")
        path, _, query = url.partition("?")
        parts = [p for p in path.split("/") if p]
        rtype = parts[0] if parts else None
        plan: dict[str, Any] = {
            "method": method,
            "rtype": rtype,
            "id": None,
            "resource": None,
            "existing": None,
            "query": query,
        }
        if rtype not in TYPES:
            raise Refused(400, "not-supported", f"unknown resource type in {url!r}")
        if method == "GET":
            if len(parts) == 1:
                plan["found"] = self.repo.matching(rtype, query)
            elif len(parts) == 2:
                plan["existing"] = self.repo.read(rtype, parts[1])
            elif len(parts) == 4 and parts[2] == "_history":
                plan["existing"] = self.repo.vread(rtype, parts[1], parts[3])
            else:
                raise Refused(400, "not-supported", f"GET {url!r} is not supported")
            return plan
        if method == "POST" and len(parts) == 1:
            if validate_now:
                validate(resource, rtype)
            matches = self.repo.matching(rtype, request["ifNoneExist"]) if request.get("ifNoneExist") else []
            if len(matches) > 1:
                raise Refused(412, "duplicate", f"{len(matches)} {rtype} resources match the If-None-Exist criteria")
            if matches:
                plan.update(id=matches[0], existing=self.repo.read(rtype, matches[0]))
            else:
                plan.update(id=uuid.uuid4().hex, resource=dict(resource))
            return plan
        if method == "PUT" and len(parts) == 2:
            if validate_now:
                validate(resource, rtype)
            if resource.get("id") != parts[1]:
                raise Refused(400, "invalid", "the resource's id is not the id in the URL")
            existing = self.repo.current[rtype].get(parts[1])
            if request.get("ifMatch"):
                if existing is None:
                    self.repo.check_not_deleted(rtype, parts[1])
                    raise Refused(404, "not-found", f"{rtype}/{parts[1]} is not known (If-Match)")
                if _version_of(request["ifMatch"]) != existing["meta"]["versionId"]:
                    raise Refused(412, "conflict", f"{rtype}/{parts[1]} is at another version than If-Match names")
            plan.update(id=parts[1], resource=dict(resource))
            return plan
        raise Refused(400, "not-supported", f"{method} {url!r} is not supported")

    def apply(self, plan: dict[str, Any], now: str) -> tuple[int, dict[str, Any]]:
        if plan["method"] == "GET":
            if "found" in plan:
                return 200, self.searchset(plan["rtype"], plan["found"], plan["query"])
            return 200, plan["existing"]
        if plan["resource"] is None:  # a conditional create that matched
            return 200, plan["existing"]
        stored, created = self.repo.store({**plan["resource"], "id": plan["id"]}, now)
        return (201 if created else 200), stored

    def searchset(self, rtype: str, ids: list[str], query: str) -> dict[str, Any]:
        """One page of matches (``_count``, ``_offset``), with a ``next`` link while more remain."""
        params = dict(parse_qsl(query))
        try:
            count, offset = int(params.get("_count", DEFAULT_COUNT)), int(params.get("_offset", 0))
        except ValueError:
            raise Refused(400, "invalid", "_count and _offset take whole numbers") from None
        page = ids[offset : offset + count]
        entries = [
            {
                "fullUrl": f"{self.base_url}/{rtype}/{rid}",
                "resource": self.repo.current[rtype][rid],
                "search": {"mode": "match"},
            }
            for rid in page
        ]
        bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "searchset", "total": len(ids), "entry": entries}
        if offset + count < len(ids):
            rest = urlencode([(k, v) for k, v in parse_qsl(query) if k not in ("_count", "_offset")])
            link = f"{self.base_url}/{rtype}?{rest + '&' if rest else ''}_count={count}&_offset={offset + count}"
            bundle["link"] = [{"relation": "next", "url": link}]
        return bundle


def _written_headers(copy: dict[str, Any]) -> dict[str, str]:
    meta = copy["meta"]
    return {
        "etag": _etag(copy),
        "location": f"{BASE}/{copy['resourceType']}/{copy['id']}/_history/{meta['versionId']}",
    }


def _response(status: int, copy: dict[str, Any]) -> dict[str, Any]:
    text = {200: "200 OK", 201: "201 Created"}[status]
    response: dict[str, Any] = {"status": text}
    if copy.get("resourceType") != "Bundle":
        meta = copy["meta"]
        response |= {
            "location": f"{copy['resourceType']}/{copy['id']}/_history/{meta['versionId']}",
            "etag": _etag(copy),
            "lastModified": meta["lastUpdated"],
        }
    return {"response": response, "resource": copy}


CAPABILITIES: dict[str, Any] = {
    "resourceType": "CapabilityStatement",
    "status": "active",
    "date": "2026-01-01",
    "kind": "instance",
    "fhirVersion": "4.0.1",
    "format": ["json"],
    "software": {"name": "fhir-cm in-memory test server"},
    "rest": [
        {
            "mode": "server",
            "interaction": [{"code": "transaction"}, {"code": "batch"}],
            "resource": [
                {
                    "type": rtype,
                    "interaction": [
                        {"code": c} for c in ("read", "vread", "update", "create", "delete", "search-type")
                    ],
                    "versioning": "versioned-update",
                    "updateCreate": True,
                    "conditionalCreate": True,
                    "searchParam": [{"name": "identifier", "type": "token"}, {"name": "_id", "type": "token"}],
                }
                for rtype in TYPES
            ],
        }
    ],
}


def app_for(server: Server) -> Any:
    """The ASGI application: one loop, and no handler awaits — one request at a time, as on one thread."""

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        path = scope["path"]
        headers = {k.decode().lower(): v.decode() for k, v in scope["headers"]}
        try:
            if path != BASE and not path.startswith(BASE + "/"):
                raise Refused(404, "not-found", f"not under {BASE}")
            status, payload, extra = server.handle(
                scope["method"], path[len(BASE) :], scope["query_string"].decode(), headers, body
            )
        except Refused as refused:
            status, payload, extra = refused.status, refused.outcome(), {}
        out = [(b"content-type", FHIR_JSON)] + [(k.encode(), v.encode()) for k, v in extra.items()]
        await send({"type": "http.response.start", "status": status, "headers": out})
        await send({"type": "http.response.body", "body": b"" if payload is None else orjson.dumps(payload)})

    return app


def main() -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    base_url = f"http://127.0.0.1:{sock.getsockname()[1]}{BASE}"
    config = uvicorn.Config(app_for(Server(base_url)), log_level="warning", access_log=False, lifespan="off")
    runner = uvicorn.Server(config)

    def stop_when_stdin_closes() -> None:
        sys.stdin.read()
        os._exit(0)

    threading.Thread(target=stop_when_stdin_closes, daemon=True).start()
    print(f"READY {base_url}", flush=True)
    runner.run(sockets=[sock])


@contextmanager
def memory_server() -> Iterator[RunningServer]:
    """Run the in-memory server in a process of its own for the block: a fresh, empty one each time."""
    command = [sys.executable, "-m", "tests.memory_server"]
    with run_server(command, what=WHAT, timeout=STARTUP_TIMEOUT, cwd=Path(__file__).resolve().parents[1]) as (url, pid):
        yield RunningServer(base_url=url, root_url=url.rsplit("/fhir", 1)[0], settings={"pid": pid})


if __name__ == "__main__":
    main()
