"""The async FHIR client: the interactions of FHIR's REST API, each checked against what the server declares.

Reads, searches, writes and bundles are built here; sending them — the pool, the retries, the one
place HTTP failures become ``FhirError``s — is ``FhirBoundary``'s (``_boundary``), which the client
extends.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl

import httpx

from .. import decimals
from ._boundary import FHIR_JSON, FhirBoundary
from ._bundles import BundleEntry, Resource, as_dict, criteria_query, send_batch, send_transaction, version_tag
from ._capabilities import Capabilities, FhirRelease, release_from_version
from ._errors import FhirError, InvalidResponse, UnsupportedByServer
from ._words import a_resource
from ._results import BundleResult, WriteResult
from ._retry import http_date
from ._search import HistorySet, SearchSet, search_value
from ._urls import check_id, check_type

__all__ = ["FHIR_JSON", "JSON_PATCH", "AsyncFhirClient", "Resource"]

log = logging.getLogger("fhir_cm.fhir")

JSON_PATCH = "application/json-patch+json"


class AsyncFhirClient(FhirBoundary):
    """A FHIR REST client for one server base.

    Capabilities, once loaded (``await client.capabilities()``, or passed in), are enforced: a
    search parameter, interaction or bundle kind the server does not declare is refused with
    ``UnsupportedByServer`` before anything is sent. ``enforce_capabilities=False`` turns that off
    for servers whose statement is known to under-declare.
    """

    def __repr__(self) -> str:
        return f"AsyncFhirClient({self._base!r})"

    # -- capabilities -----------------------------------------------------------------------------

    async def capabilities(self, *, refresh: bool = False) -> Capabilities:
        """The server's CapabilityStatement, read from ``/metadata`` once and cached."""
        if self._capabilities is None or refresh:
            request = self._request("GET", f"{self._base}/metadata")
            self._capabilities = Capabilities.from_statement(self._json(await self._send(request)) or {})
        return self._capabilities

    async def release(self) -> FhirRelease:
        """The FHIR release to validate with: configured, or detected from ``/metadata``."""
        if self._release is None:
            caps = await self.capabilities()
            self._release = release_from_version(caps.fhir_version)
        return self._release

    def _gate(self, resource_type: str, interaction: str) -> None:
        caps = self.known_capabilities
        if caps is not None:
            caps.ensure_supported(resource_type, interaction)

    # -- reads and searches -------------------------------------------------------------------------

    async def read(self, resource_type: str, resource_id: str) -> dict[str, Any]:
        """The current version of a resource (``ResourceNotFound``/``ResourceGone`` otherwise)."""
        self._gate(check_type(resource_type), "read")
        request = self._request("GET", f"{self._base}/{resource_type}/{check_id(resource_id)}")
        return self._resource(await self._send(request), resource_type)

    async def vread(self, resource_type: str, resource_id: str, version_id: str) -> dict[str, Any]:
        """One specific version of a resource."""
        self._gate(check_type(resource_type), "vread")
        url = f"{self._base}/{resource_type}/{check_id(resource_id)}/_history/{check_id(version_id)}"
        return self._resource(await self._send(self._request("GET", url)), resource_type)

    def search(self, resource_type: str, **params: Any) -> SearchSet[dict[str, Any]]:
        """A lazy search: ``client.search("CarePlan", patient="Patient/1").count(50)``."""
        return SearchSet(self, resource_type, max_pages=self._max_pages).search(**params)

    def history(
        self,
        resource_type: str | None = None,
        resource_id: str | None = None,
        *,
        since: Any = None,
        count: int | None = None,
    ) -> HistorySet:
        """Instance (type + id), type (type only) or system history, newest first, paged lazily."""
        if resource_id is not None and resource_type is None:
            raise ValueError("a resource id needs its type")
        params = [(n, search_value(v)) for n, v in (("_since", since), ("_count", count)) if v is not None]
        return HistorySet(
            self,
            check_type(resource_type) if resource_type else None,
            check_id(resource_id) if resource_id else None,
            params,
            max_pages=self._max_pages,
        )

    async def get_bundle(self, url: str, params: Sequence[tuple[str, str]] | None) -> tuple[dict[str, Any], str | None]:
        """GET a Bundle (a search page, a history page); ``url`` is used as given when ``params`` is None.
        With it, the answer's ``Date`` header as an ISO instant (None when absent or unreadable): the
        server's clock where the Bundle carries no ``meta.lastUpdated``."""
        response = await self._send(self._request("GET", url, params=params))
        body = self._json(response)
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise InvalidResponse(
                f"GET {httpx.URL(url).path} did not return a Bundle",
                summary="the server's answer was not a FHIR Bundle",
            )
        return body, http_date(response.headers.get("date"))

    # -- writes -----------------------------------------------------------------------------------

    async def create(self, resource: Resource, *, if_none_exist: str | Mapping[str, Any] | None = None) -> WriteResult:
        """POST a resource. ``if_none_exist`` (criteria, sent as the ``If-None-Exist`` header, never
        as a query) makes it conditional: no new resource when one already matches."""
        data = as_dict(resource)
        rtype = check_type(data["resourceType"])
        self._gate(rtype, "create")
        headers = {"Content-Type": FHIR_JSON, "Prefer": self._prefer}
        criteria = None
        if if_none_exist is not None:
            if self.known_capabilities is not None:
                self.known_capabilities.ensure_conditional(rtype, "create")
            criteria = criteria_query(if_none_exist)
            headers["If-None-Exist"] = criteria
        data.pop("id", None)  # the server assigns it; HAPI refuses a create that carries one
        request = self._request("POST", f"{self._base}/{rtype}", headers=headers, json=data)
        result = await self._write(request, rtype, criteria)
        if not isinstance(result.id, str) or not result.id or result.resource_type not in (None, rtype):
            # Written, perhaps, but not to be found again: every caller keeps the id to refer to it.
            said = (
                f"the server answered {result.status} to a create of {a_resource(rtype)} without naming what it wrote "
                "(no Location header, and no resource with an id in the body)"
            )
            raise InvalidResponse(f"POST {rtype}: {said}", summary=said)
        return result

    async def update(self, resource: Resource, *, version_id: str | None = None, versioned: bool = True) -> WriteResult:
        """PUT [type]/[id]. Sends ``If-Match: W/"<version>"`` (``version_id`` or ``meta.versionId``)
        unless ``versioned`` is False; a stale version raises ``VersionConflict`` (409 or 412)."""
        data = as_dict(resource)
        rtype, rid = check_type(data["resourceType"]), check_id(str(data.get("id") or ""))
        self._gate(rtype, "update")
        headers = {"Content-Type": FHIR_JSON, "Prefer": self._prefer}
        if versioned and (tag := version_tag(data, version_id)):
            headers["If-Match"] = tag
        request = self._request("PUT", f"{self._base}/{rtype}/{rid}", headers=headers, json=data)
        return await self._write(request, rtype, None)

    async def conditional_update(self, resource: Resource, criteria: str | Mapping[str, Any]) -> WriteResult:
        """PUT [type]?criteria: update the single match or create when none (``AmbiguousMatch`` if several)."""
        data = as_dict(resource)
        rtype = check_type(data["resourceType"])
        self._gate(rtype, "update")
        if self.known_capabilities is not None:
            self.known_capabilities.ensure_conditional(rtype, "update")
        query = criteria_query(criteria)
        headers = {"Content-Type": FHIR_JSON, "Prefer": self._prefer}
        request = self._request("PUT", f"{self._base}/{rtype}?{query}", headers=headers, json=data)
        return await self._write(request, rtype, query)

    async def patch(
        self,
        resource_type: str,
        resource_id: str,
        operations: Sequence[Mapping[str, Any]],
        *,
        version_id: str | None = None,
    ) -> WriteResult:
        """JSON Patch (``application/json-patch+json``; HAPI refuses plain JSON with HAPI-1965)."""
        rtype, rid = check_type(resource_type), check_id(resource_id)
        self._gate(rtype, "patch")
        caps = self.known_capabilities
        if caps is not None and caps.patch_formats and JSON_PATCH not in caps.patch_formats:
            raise UnsupportedByServer("server does not accept JSON Patch", resource_type=rtype)
        headers = {"Content-Type": JSON_PATCH, "Prefer": self._prefer}
        if version_id is not None:
            headers["If-Match"] = f'W/"{version_id}"'
        request = self._request(
            "PATCH", f"{self._base}/{rtype}/{rid}", headers=headers, content=decimals.dumps(list(operations))
        )
        return await self._write(request, rtype, None)

    async def delete(self, resource_type: str, resource_id: str) -> WriteResult:
        """DELETE [type]/[id]; the result carries the server's OperationOutcome, if any."""
        rtype, rid = check_type(resource_type), check_id(resource_id)
        self._gate(rtype, "delete")
        response = await self._send(self._request("DELETE", f"{self._base}/{rtype}/{rid}"))
        result = WriteResult.from_response(response, self._json(response))
        return result if result.id else replace(result, resource_type=rtype, id=rid)

    async def transaction(
        self, entries: Sequence[BundleEntry | Mapping[str, Any]], *, fallback: bool = True
    ) -> BundleResult:
        """An atomic transaction bundle; see ``_bundles`` for how it degrades when refused."""
        return await send_transaction(self, entries, fallback=fallback)

    async def batch(
        self,
        entries: Sequence[BundleEntry | Mapping[str, Any]],
        *,
        fallback: bool = True,
        max_entries: int | None = None,
    ) -> BundleResult:
        """A batch bundle (independent entries), optionally in chunks of ``max_entries``."""
        return await send_batch(self, entries, fallback=fallback, max_entries=max_entries)

    async def post_bundle(self, bundle: Mapping[str, Any], *, safe: bool) -> dict[str, Any]:
        """POST a transaction/batch Bundle to the base; ``safe`` says whether it may be re-sent."""
        headers = {"Content-Type": FHIR_JSON, "Prefer": self._prefer}
        response = await self._send(self._request("POST", self._base, headers=headers, json=bundle), safe=safe)
        body = self._json(response)
        if not isinstance(body, dict) or body.get("resourceType") != "Bundle":
            raise InvalidResponse(
                f"{bundle.get('type')} did not return a Bundle",
                summary=f"the server's answer to a {bundle.get('type')} was not a FHIR Bundle",
            )
        return body

    async def execute(self, entry: BundleEntry) -> WriteResult:
        """Send one bundle entry as a plain request (the single-request fallback)."""
        path, _, query = entry.url.partition("?")
        segments = path.split("/")
        resource = entry.resource or {}
        if entry.method == "POST":
            return await self.create(resource, if_none_exist=entry.if_none_exist)
        if entry.method == "PUT" and query:
            return await self.conditional_update(resource, query)
        if entry.method == "PUT":
            data = {**resource, "id": segments[1] if len(segments) > 1 else resource.get("id")}
            version = entry.if_match.removeprefix("W/").strip('"') if entry.if_match else None
            return await self.update(data, version_id=version, versioned=version is not None)
        if entry.method == "DELETE" and len(segments) == 2:
            return await self.delete(segments[0], segments[1])
        if entry.method == "GET" and len(segments) == 2:
            found = await self.read(segments[0], segments[1])
            return WriteResult.build(200, body=found)
        raise UnsupportedByServer(f"cannot send {entry.method} {path} as a single request")

    async def _write(self, request: httpx.Request, resource_type: str, criteria: str | None) -> WriteResult:
        """Send a write; when the answer has no resource (``return=minimal``, Azure), read it back."""
        response = await self._send(request)
        result = WriteResult.from_response(response, self._json(response))
        if result.resource is not None:
            return result
        try:
            if result.id:
                return result.with_resource(await self.read(result.resource_type or resource_type, result.id))
            if criteria:
                found: dict[str, Any] = await SearchSet(
                    self, resource_type, parse_qsl(criteria, keep_blank_values=True)
                ).get()
                return result.with_resource(found)
        except FhirError as exc:
            log.warning("%s succeeded but reading it back failed: %s", request.method, type(exc).__name__)
        return result
