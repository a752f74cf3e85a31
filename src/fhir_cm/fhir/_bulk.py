"""Bulk Data Access (FHIR ``$export``): kick-off, polling, streamed NDJSON, clean-up.

Reading a whole population through paged searches costs one round trip per page per type; a server
offering ``$export`` writes it into NDJSON files instead. The flow (Bulk Data IG 2.0):

1. **Kick-off** at system (``/$export``), Patient (``/Patient/$export``) or Group level
   (``/Group/<id>/$export``) with ``Prefer: respond-async``, ``_type``, ``_since`` and ``_typeFilter``;
   the server answers 202 with the job's status URL in ``Content-Location``. Servers differ on GET or
   POST kick-off and on ``_type`` repeated or comma-joined: both are per-server switches
   (:class:`BulkSettings`).
2. **Polling** the status URL: 202 (with ``Retry-After``, honoured up to ``max_retry_after``, and an
   ``X-Progress`` told to ``on_progress``), a 429 (waited out the same way), until 200 with the
   manifest — or an error (an OperationOutcome, a 4xx/5xx: :class:`BulkExportFailed`, with the
   server's reason). A poll that failed without the job failing (an OperationOutcome with a transient
   issue code, as the IG has servers say it, or a status URL not reached) is asked again.
3. **Download**, streamed: each file is read line by line (constant memory whatever its size), each
   line one resource; a line that is not JSON ends the read with :class:`NotNdjson` — nothing
   half-read is taken as complete. Files are fetched with the client's credentials only when the
   manifest says ``requiresAccessToken`` (a JSON boolean; anything else is a malformed manifest).
4. **DELETE** of the job when the reader is done, so the server can free the files.

The manifest's ``transactionTime`` is the ``_since`` of the next incremental export; keeping it per
server is the caller's job (this layer knows no store).
"""

from __future__ import annotations

import datetime as dt
import json
import time
from urllib.parse import parse_qsl
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, Field, field_validator

from .. import decimals
from ._errors import (
    _TRANSIENT_ISSUES,
    FhirError,
    InvalidResponse,
    ResourceNotFound,
    TransientError,
    error_from_response,
)
from ._retry import parse_retry_after

if TYPE_CHECKING:
    import httpx

    from ._client import AsyncFhirClient

__all__ = [
    "BulkExport",
    "BulkExportFailed",
    "BulkFile",
    "BulkManifest",
    "BulkRequest",
    "BulkSettings",
    "NotNdjson",
    "PagedPopulation",
    "bulk_export",
    "missing_group",
    "read_population",
]

NDJSON = "application/fhir+ndjson"


class BulkExportFailed(FhirError):
    """The export job failed or could not be started; the message carries the server's reason."""


class NotNdjson(InvalidResponse):
    """A file of the export is not NDJSON (a line that is not a JSON object): the export is incomplete."""


class BulkSettings(BaseModel):
    """What servers differ on, and how long to wait."""

    kick_off: Literal["GET", "POST"] = "GET"
    join_types: bool = Field(default=True, description="_type=A,B (True) or _type=A&_type=B (False).")
    poll_interval: float = Field(
        default=1.0, gt=0, description="Seconds between polls when the server gives no Retry-After."
    )
    max_retry_after: float = Field(default=60.0, gt=0, description="The longest Retry-After honoured, in seconds.")
    max_wait: float = Field(default=3600.0, gt=0, description="Give up on a job that takes longer (seconds).")
    search_overlap: float = Field(
        default=60.0,
        ge=0,
        description="The search fallback reads from this many seconds before `since`: a resource committed "
        "out of order around the previous read, or stamped by a server clock a little behind ours, is read "
        "again rather than missed.",
    )


class BulkRequest(BaseModel):
    """What to export. ``since`` is a FHIR instant: a datetime must carry its timezone (a naive one
    would go out without an offset, which servers refuse or read in their own zone); a string is sent
    as given (the last manifest's ``transactionTime``)."""

    level: Literal["system", "patient", "group"] = "system"
    group_id: str | None = None
    types: list[str] = Field(default_factory=list)
    since: dt.datetime | str | None = None
    type_filters: list[str] = Field(default_factory=list)

    @field_validator("since")
    @classmethod
    def _an_instant(cls, since: dt.datetime | str | None) -> dt.datetime | str | None:
        if isinstance(since, dt.datetime) and since.utcoffset() is None:
            raise ValueError("since is a FHIR instant: give the datetime its timezone (e.g. tzinfo=UTC)")
        return since


class BulkFile(BaseModel):
    """One NDJSON file of the manifest."""

    type: str
    url: str
    count: int | None = None


class BulkManifest(BaseModel):
    """The completed job: its files, error files, and the time the export is consistent with."""

    transaction_time: str
    request: str
    requires_access_token: bool = False
    output: list[BulkFile] = Field(default_factory=list)
    error: list[BulkFile] = Field(default_factory=list)
    #: Bundles of ``DELETE`` requests: what was deleted since ``_since`` (Bulk Data STU2+).
    deleted: list[BulkFile] = Field(default_factory=list)


def _params(request: BulkRequest, settings: BulkSettings) -> list[tuple[str, str]]:
    params = [("_outputFormat", NDJSON)]
    if request.types:
        if settings.join_types:
            params.append(("_type", ",".join(request.types)))
        else:
            params += [("_type", t) for t in request.types]
    if request.since is not None:
        since = request.since.isoformat() if isinstance(request.since, dt.datetime) else request.since
        params.append(("_since", since))
    params += [("_typeFilter", f) for f in request.type_filters]
    return params


#: The kick-off parameters the operation does not define as strings: a server checking a POSTed
#: Parameters against its definition refuses another type (HAPI-0362).
_VALUE_TYPES = {"_since": "valueInstant"}


def _path(request: BulkRequest) -> str:
    if request.level == "patient":
        return "Patient/$export"
    if request.level == "group":
        if not request.group_id:
            raise ValueError("a Group-level export needs the group id")
        return f"Group/{request.group_id}/$export"
    return "$export"


class BulkExport:
    """A completed export: its manifest, a stream of its resources, and the job's clean-up."""

    def __init__(self, client: AsyncFhirClient, status_url: str, manifest: BulkManifest) -> None:
        self._client, self.status_url, self.manifest = client, status_url, manifest

    @property
    def transaction_time(self) -> str:
        return self.manifest.transaction_time

    async def resources(self, types: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every resource of every output file (of ``types``), streamed; raises :class:`NotNdjson`."""
        for file in self.manifest.output:
            if types is None or file.type in types:
                async for resource in self._lines(file):
                    yield resource

    async def deleted(self) -> AsyncIterator[tuple[str, str]]:
        """``(type, id)`` of each resource the manifest says was deleted since ``_since``: an incremental
        reader forgets them (the ``deleted`` files are Bundles of ``DELETE Type/id`` requests)."""
        for file in self.manifest.deleted:
            async for bundle in self._lines(file):
                for entry in bundle.get("entry") or ():
                    request = entry.get("request") if isinstance(entry, dict) else None
                    if not isinstance(request, dict):
                        continue
                    url = request.get("url")
                    if isinstance(url, str) and str(request.get("method", "")).upper() == "DELETE":
                        rtype, rid = _type_id(url)
                        if rtype and rid:
                            yield rtype, rid

    async def errors(self) -> list[dict[str, Any]]:
        """The OperationOutcomes of the manifest's error files (what the server could not export)."""
        found: list[dict[str, Any]] = []
        for file in self.manifest.error:
            found += [r async for r in self._lines(file)]
        return found

    async def failures(self) -> list[str]:
        """What the server says it could not export: each ``error`` or ``fatal`` issue of the error
        files, in its words. Resources are missing from the output then; warnings and information
        (the error files carry those too) are no such loss."""
        found: list[str] = []
        for outcome in await self.errors():
            for issue in outcome.get("issue") or ():
                if isinstance(issue, dict) and issue.get("severity") in ("error", "fatal"):
                    details = issue.get("details")
                    text = details.get("text") if isinstance(details, dict) else None
                    found.append(str(issue.get("diagnostics") or text or issue.get("code") or "an error"))
        return found

    async def _lines(self, file: BulkFile) -> AsyncIterator[dict[str, Any]]:
        async with self._client.stream_file(file.url, authenticated=self.manifest.requires_access_token) as response:
            number = 0
            async for line in response.aiter_lines():
                number += 1
                if not line.strip():
                    continue
                try:
                    resource = json.loads(line, parse_float=decimals.number, parse_int=decimals.integer)
                except ValueError:
                    raise NotNdjson(f"{file.type} file: line {number} is not JSON; the export is incomplete") from None
                if not isinstance(resource, dict) or "resourceType" not in resource:
                    raise NotNdjson(f"{file.type} file: line {number} is not a FHIR resource; the export is incomplete")
                yield resource

    async def delete(self) -> None:
        """Ask the server to drop the job and its files (a server that already did is fine)."""
        try:
            await self._client.send_raw("DELETE", self.status_url, headers={"Accept": "application/json"})
        except FhirError:
            pass


async def _kick_off(client: AsyncFhirClient, request: BulkRequest, settings: BulkSettings) -> str:
    url = f"{client.base_url}/{_path(request)}"
    headers = {"Accept": "application/fhir+json", "Prefer": "respond-async"}
    params = _params(request, settings)
    try:
        if settings.kick_off == "POST":
            body = {
                "resourceType": "Parameters",
                "parameter": [{"name": k, _VALUE_TYPES.get(k, "valueString"): v} for k, v in params],
            }
            response = await client.send_raw("POST", url, headers=headers, json=body)
        else:
            response = await client.send_raw("GET", url, headers=headers, params=params)
    except FhirError as exc:
        if isinstance(exc, TransientError) and exc.status is None:
            raise  # the server was not reached: it neither started nor refused an export
        raise BulkExportFailed(
            f"the server did not start the export: {str(exc).splitlines()[0]}", status=exc.status
        ) from None
    location = str(response.headers.get("content-location") or "")
    if response.status_code != 202 or not location:
        raise BulkExportFailed(f"the export kick-off answered {response.status_code} without a status URL")
    return location


async def _manifest(
    client: AsyncFhirClient, status_url: str, settings: BulkSettings, on_progress: Callable[[str], None] | None
) -> BulkManifest:
    waited, started = 0.0, time.monotonic()
    while True:
        request = client.build_raw("GET", status_url, headers={"Accept": "application/json"})
        why = ""  # what a poll that failed (not the job) said, for the message if it never finishes
        response: httpx.Response | None = None
        try:
            response = await client.send_once(request)
        except TransientError as exc:
            if exc.status is not None:
                raise
            why = str(exc).splitlines()[0]  # the status URL not reached: the job runs on regardless
        if response is not None:
            if response.status_code == 200:
                return _manifest_of(response)
            if response.status_code not in (202, 429):
                error = error_from_response(response, client.base_url)
                # A poll that failed, not the job (the IG: an OperationOutcome with a transient issue
                # code), is asked again; taken for the job's failure, it ended a long export and deleted it.
                if not set(error.issue_codes) & _TRANSIENT_ISSUES:
                    raise BulkExportFailed(
                        f"the export failed: {str(error).splitlines()[0]}", status=response.status_code
                    )
                why = str(error).splitlines()[0]
            elif on_progress is not None and response.status_code == 202:
                on_progress(response.headers.get("x-progress") or "in progress")
        retry_after = parse_retry_after(response.headers.get("retry-after")) if response is not None else None
        delay = min(max(retry_after or settings.poll_interval, 0.0), settings.max_retry_after)
        # Slept time (what a test's fake sleep counts) or wall time, whichever is further: slow
        # status answers count against the wait too.
        if max(waited, time.monotonic() - started) + delay > settings.max_wait:
            last = f"; its status, last asked: {why}" if why else ""
            raise BulkExportFailed(f"the export did not finish within {settings.max_wait:.0f} s{last}")
        await client.sleep(delay)
        waited += delay


def _requires_access_token(data: Mapping[str, Any]) -> bool:
    """The manifest's ``requiresAccessToken``, a boolean (Bulk Data IG): anything else is malformed, and
    neither guess is safe — true sends the server's credentials to a file host said to need none, false
    fetches files meant to be protected without them. Left out, it is false (as servers did before it)."""
    said = data.get("requiresAccessToken", False)
    if not isinstance(said, bool):
        raise BulkExportFailed(
            f"the export's manifest is malformed: requiresAccessToken is {type(said).__name__}, not a boolean"
        )
    return said


def _manifest_of(response: httpx.Response) -> BulkManifest:
    try:
        data = response.json()
        return BulkManifest(
            transaction_time=data["transactionTime"],
            request=data.get("request", ""),
            requires_access_token=_requires_access_token(data),
            output=[BulkFile.model_validate(f) for f in data.get("output") or []],
            error=[BulkFile.model_validate(f) for f in data.get("error") or []],
            deleted=[BulkFile.model_validate(f) for f in data.get("deleted") or []],
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise BulkExportFailed(f"the export's manifest is not one ({type(exc).__name__})") from None


@asynccontextmanager
async def bulk_export(
    client: AsyncFhirClient,
    request: BulkRequest,
    *,
    on_progress: Callable[[str], None] | None = None,
    settings: BulkSettings | None = None,
) -> AsyncIterator[BulkExport]:
    """Run an export to completion and hand it over; the job is DELETEd when the block ends."""
    chosen = settings or BulkSettings()
    status_url = await _kick_off(client, request, chosen)
    try:
        manifest = await _manifest(client, status_url, chosen, on_progress)
    except BaseException:
        await BulkExport(client, status_url, BulkManifest(transaction_time="", request="")).delete()
        raise
    export = BulkExport(client, status_url, manifest)
    try:
        yield export
    finally:
        await export.delete()


def _type_id(url: str) -> tuple[str, str]:
    """``Type/id`` (or a URL ending so) of a ``DELETE`` request."""
    parts = url.split("?", 1)[0].rstrip("/").split("/")
    return (parts[-2], parts[-1]) if len(parts) >= 2 else ("", "")


class PagedPopulation:
    """The fallback where a server offers no ``$export``: the same types read by paged searches
    (``_lastUpdated=gt<since>``, and a type's ``_typeFilter`` queries as its searches), streamed page
    by page; its transaction time is taken before the first
    search, so the next incremental read misses nothing written meanwhile."""

    def __init__(
        self, client: AsyncFhirClient, request: BulkRequest, transaction_time: str, *, overlap: float = 60.0
    ) -> None:
        self._client, self._request, self.transaction_time = client, request, transaction_time
        self._overlap = overlap
        #: Called with each page's ``Bundle.entry`` before its resources are yielded: their fullUrls
        #: say at which base the server names its own resources (which references use too).
        self.on_entries: Callable[[Sequence[Mapping[str, Any]]], None] | None = None

    async def deleted(self) -> AsyncIterator[tuple[str, str]]:
        """Searches do not see deletions: nothing (a full read forgets what is gone)."""
        for _ in ():
            yield _

    async def resources(self, types: Sequence[str] | None = None) -> AsyncIterator[dict[str, Any]]:
        stamp = _overlapped(self._request.since, self._overlap)
        for rtype in self._request.types:
            if types is not None and rtype not in types:
                continue
            # A type's ``_typeFilter`` queries narrow it as they narrow an export: one search each.
            filters = [parse_qsl(f.partition("?")[2]) for f in self._request.type_filters if f.startswith(f"{rtype}?")]
            seen: set[str] = set()
            for criteria in filters or [[]]:
                search = self._client.search(rtype).count(500)
                for name, value in criteria:
                    search = search.where(name, value)
                if stamp:
                    search = search.where("_lastUpdated", f"gt{stamp}")
                async for page in search.pages():
                    if self.on_entries is not None:
                        self.on_entries(page.entries)
                    for resource in page.matches:
                        rid = str(resource.get("id"))
                        if resource.get("resourceType") == rtype and rid not in seen:
                            if len(filters) > 1:
                                seen.add(rid)  # two filters may both match a resource
                            yield resource


def _overlapped(since: dt.datetime | str | None, overlap: float) -> str | None:
    if since is None:
        return None
    when = since if isinstance(since, dt.datetime) else None
    if when is None:
        try:
            when = dt.datetime.fromisoformat(str(since).replace("Z", "+00:00"))
        except ValueError:
            return str(since)  # a date the server understands and we do not: passed as given
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return (when - dt.timedelta(seconds=overlap)).isoformat(timespec="milliseconds")


@asynccontextmanager
async def read_population(
    client: AsyncFhirClient,
    request: BulkRequest,
    *,
    on_progress: Callable[[str], None] | None = None,
    settings: BulkSettings | None = None,
    use_export: bool | None = None,
) -> AsyncIterator[BulkExport | PagedPopulation]:
    """The resources of ``request`` by ``$export`` where the server offers it (the kick-off is tried;
    a 400/404/405/501 refusal means it does not), else by paged searches — the same interface either
    way (``resources()``, ``transaction_time``). ``use_export`` forces one path. A system-level
    request is needed for the fallback (searches do not take a Group)."""
    async with AsyncExitStack() as stack:
        chosen: BulkExport | PagedPopulation | None = None
        if use_export is not False:
            try:
                chosen = await stack.enter_async_context(
                    bulk_export(client, request, on_progress=on_progress, settings=settings)
                )
            except BulkExportFailed as exc:
                if use_export or exc.status not in (400, 404, 405, 501) or "did not start" not in str(exc):
                    raise
        if chosen is None:
            if request.level == "group":
                raise BulkExportFailed(await _group_refused(client, request.group_id or ""))
            now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
            chosen = PagedPopulation(client, request, now, overlap=(settings or BulkSettings()).search_overlap)
        yield chosen


def missing_group(group_id: str) -> str:
    """What to say of a Group the server does not have (a mistyped id, most often)."""
    return f"the server has no Group {group_id!r}: check the id (the id alone, not Group/<id>)"


async def _group_refused(client: AsyncFhirClient, group_id: str) -> str:
    """Why a Group's export did not start: a server answers 404 for a Group it does not have as for an
    operation it does not offer, and a mistyped id read as "no $export" sends the engineer to
    reconfigure a server that has one. The Group is read to tell them apart."""
    try:
        await client.read("Group", group_id)
    except (ResourceNotFound, ValueError):  # ValueError: no FHIR id, so no Group's either
        return missing_group(group_id)
    except FhirError:
        pass  # the read says nothing more: the kick-off's refusal stands
    return "the server offers no $export, and a Group cannot be read by searches here"
