"""Transaction and batch bundles, with per-entry results and a way down when a server refuses them.

When a server refuses a transaction for its size (413, or a "too many entries" answer such as
Medplum's 400 or HAPI-0528) or its kind ("not supported"), nothing was applied, so the same entries
may be sent again in a smaller form:

* split into transactions of at most the server's limit (see ``_limits``: the number it stated,
  Medplum's 8, else half), in dependency order — entries linked by ``urn:uuid`` references stay in
  one atomic part when their group fits, and a later part's references to earlier parts are
  rewritten to the ids the server assigned; every entry keeps its ``ifNoneExist``/``ifMatch``, so a
  re-run after a partial outcome stays idempotent; or
* sent as a batch when no entry references another, or
* sent as single requests in reference order, with the ids the server assigns written into the
  later entries' references (what the server would have done inside a transaction).

The limit learnt is kept on the client (``transaction_limit``), so the rest of a run sends parts of
the right size at once, and the sync layer stores it per server for later runs.

A batch splits in halves on 413 and falls back to single requests. A server whose
CapabilityStatement lists ``transaction`` but not ``batch`` is sent batches all the same (HAPI 8
serves both at its base and lists only the first; one request per entry cost it three times the
requests), and the first refusal of one sends every later batch of the client singly. Entries of a batch response that
failed transiently (5xx) are sent once more only if they are conditional or versioned — repeating an
unconditional create could duplicate the resource; a 429 entry was refused before anything was done,
so it is sent again whatever it is. Errors raise only while nothing was applied; once part of the
work is done, failures are reported per entry instead, and ``BundleResult.mode`` says how atomic the
outcome really is.
"""

from __future__ import annotations

import copy
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

import orjson
from pydantic import BaseModel

from ._answers import read_answers
from ._errors import FhirError, PayloadTooLarge, RequestInfo, UnsupportedByServer
from ._limits import limit_after_refusal, plan_parts
from ._results import BundleResult, WriteResult
from ._search import search_value
from ._urls import check_id, check_type

if TYPE_CHECKING:
    from ._capabilities import Capabilities
    from ._client import AsyncFhirClient

__all__ = ["BundleEntry", "Resource", "as_dict", "criteria_query", "send_batch", "send_transaction"]

Resource = Mapping[str, Any] | BaseModel

_MODES = ("transaction", "split-transaction", "batch", "single")  # strongest first


def as_dict(resource: Resource) -> dict[str, Any]:
    """A resource as FHIR JSON data, whether given as a dict or a fhir.resources model."""
    data = orjson.loads(resource.model_dump_json()) if isinstance(resource, BaseModel) else dict(resource)
    if not isinstance(data.get("resourceType"), str):
        raise ValueError("resource has no resourceType")
    return data


def criteria_query(criteria: str | Mapping[str, Any]) -> str:
    """Search criteria as a query string: a mapping is encoded, a string is used as given."""
    if isinstance(criteria, str):
        return criteria.lstrip("?")
    return urlencode([(k, search_value(v)) for k, v in criteria.items()], safe=":/|,")


def version_tag(resource: Mapping[str, Any], version_id: str | None) -> str | None:
    """``W/"<version>"`` for If-Match: the given version, else the resource's ``meta.versionId``."""
    version = version_id or (resource.get("meta") or {}).get("versionId")
    return f'W/"{version}"' if version else None


@dataclass(frozen=True)
class BundleEntry:
    """One request inside a transaction or batch (create, update, conditional update, delete, read)."""

    method: str
    url: str
    resource: dict[str, Any] | None = field(default=None, repr=False)
    full_url: str | None = None
    if_none_exist: str | None = None
    if_match: str | None = None

    @classmethod
    def create(
        cls,
        resource: Resource,
        *,
        full_url: str | None = None,
        if_none_exist: str | Mapping[str, Any] | None = None,
    ) -> BundleEntry:
        """POST; ``if_none_exist`` makes it a conditional create, ``full_url`` a ``urn:uuid`` target."""
        data = as_dict(resource)
        data.pop("id", None)  # the server assigns it
        criteria = criteria_query(if_none_exist) if if_none_exist is not None else None
        return cls("POST", check_type(data["resourceType"]), data, full_url, if_none_exist=criteria)

    @classmethod
    def update(cls, resource: Resource, *, version_id: str | None = None, versioned: bool = True) -> BundleEntry:
        """PUT [type]/[id]; with the known version as ``ifMatch`` unless ``versioned`` is False."""
        data = as_dict(resource)
        rtype, rid = check_type(data["resourceType"]), check_id(str(data.get("id") or ""))
        if_match = version_tag(data, version_id) if versioned else None
        return cls("PUT", f"{rtype}/{rid}", data, if_match=if_match)

    @classmethod
    def conditional_update(
        cls, resource: Resource, criteria: str | Mapping[str, Any], *, full_url: str | None = None
    ) -> BundleEntry:
        """PUT [type]?criteria: update the one match, or create when nothing matches."""
        data = as_dict(resource)
        return cls("PUT", f"{check_type(data['resourceType'])}?{criteria_query(criteria)}", data, full_url)

    @classmethod
    def delete(cls, resource_type: str, resource_id: str) -> BundleEntry:
        return cls("DELETE", f"{check_type(resource_type)}/{check_id(resource_id)}")

    @classmethod
    def read(cls, resource_type: str, resource_id: str) -> BundleEntry:
        return cls("GET", f"{check_type(resource_type)}/{check_id(resource_id)}")

    @classmethod
    def from_fhir(cls, entry: Mapping[str, Any]) -> BundleEntry:
        """Accept a FHIR ``Bundle.entry`` dict (request.method/url/ifNoneExist/ifMatch)."""
        request = entry.get("request") or {}
        method = str(request.get("method", "")).upper()
        if method not in ("POST", "PUT", "DELETE", "GET"):
            raise ValueError(f"unsupported bundle entry method {method!r} (POST, PUT, DELETE, GET are)")
        resource = entry.get("resource")
        return cls(
            method,
            str(request.get("url", "")),
            dict(resource) if isinstance(resource, Mapping) else None,
            entry.get("fullUrl"),
            if_none_exist=request.get("ifNoneExist"),
            if_match=request.get("ifMatch"),
        )

    def to_fhir(self) -> dict[str, Any]:
        request: dict[str, Any] = {"method": self.method, "url": self.url}
        if self.if_none_exist:
            request["ifNoneExist"] = self.if_none_exist
        if self.if_match:
            request["ifMatch"] = self.if_match
        entry: dict[str, Any] = {}
        if self.full_url:
            entry["fullUrl"] = self.full_url
        if self.resource is not None:
            entry["resource"] = self.resource
        entry["request"] = request
        return entry

    @property
    def conditional(self) -> bool:
        return bool(self.if_none_exist) or (self.method in ("PUT", "DELETE") and "?" in self.url)

    @property
    def safe_to_repeat(self) -> bool:
        """Sending it twice cannot duplicate a resource or overwrite a newer version."""
        if self.method == "GET":
            return True
        if self.method == "POST":
            return bool(self.if_none_exist)
        return self.method == "PUT" and (bool(self.if_match) or "?" in self.url)

    def request_info(self) -> RequestInfo:
        path = self.url.split("?", 1)[0].split("/")
        return RequestInfo(
            method=self.method,
            resource_type=path[0] or None,
            resource_id=path[1] if len(path) > 1 else None,
            if_match=bool(self.if_match),
            conditional=self.conditional,
        )

    def references(self) -> Iterator[str]:
        """Every literal reference in the resource."""
        yield from _references(self.resource)

    def with_references(self, mapping: Mapping[str, str]) -> BundleEntry:
        """A copy whose references to other entries' ``fullUrl`` point at the ids they were given."""
        if self.resource is None or not any(ref in mapping for ref in self.references()):
            return self
        resource = copy.deepcopy(self.resource)
        for node in _reference_nodes(resource):
            node["reference"] = mapping.get(node["reference"], node["reference"])
        return BundleEntry(self.method, self.url, resource, self.full_url, self.if_none_exist, self.if_match)


def _reference_nodes(node: Any) -> Iterator[dict[str, Any]]:
    if isinstance(node, dict):
        if isinstance(node.get("reference"), str):
            yield node
        for value in node.values():
            yield from _reference_nodes(value)
    elif isinstance(node, list):
        for value in node:
            yield from _reference_nodes(value)


def _references(node: Any) -> Iterator[str]:
    for ref in _reference_nodes(node):
        yield ref["reference"]


# -- dependency order and groups ------------------------------------------------------------------


def _dependencies(entries: Sequence[BundleEntry]) -> list[set[int]]:
    """For each entry, the entries whose ``fullUrl`` it references."""
    by_url = {e.full_url: i for i, e in enumerate(entries) if e.full_url}
    return [{by_url[r] for r in e.references() if r in by_url and by_url[r] != i} for i, e in enumerate(entries)]


def _reference_order(entries: Sequence[BundleEntry]) -> list[int]:
    """Referenced entries first, otherwise the given order; a cycle cannot be sent one by one."""
    deps = _dependencies(entries)
    done: list[int] = []
    placed: set[int] = set()
    while len(done) < len(entries):
        ready = [i for i in range(len(entries)) if i not in placed and deps[i] <= placed]
        if not ready:
            raise UnsupportedByServer("entries reference each other in a cycle: only a transaction can create them")
        done.append(ready[0])
        placed.add(ready[0])
    return done


def _weakest(modes: Sequence[str]) -> str:
    return max(modes, key=_MODES.index) if modes else "batch"


# -- sending --------------------------------------------------------------------------------------

Runner = Callable[[list[BundleEntry]], Awaitable[tuple[list[WriteResult], str]]]


def _failed(entry: BundleEntry, exc: FhirError) -> WriteResult:
    info = entry.request_info()
    return WriteResult(exc.status, resource_type=info.resource_type, id=info.resource_id, error=exc)


async def _in_parts(
    entries: Sequence[BundleEntry], parts: list[list[int]], run: Runner, joined: str
) -> tuple[list[WriteResult], str]:
    """Run each part; once one part may have been applied, a failing part is reported per entry."""
    results: list[WriteResult] = [WriteResult(None)] * len(entries)
    modes: list[str] = []
    for idxs in parts:
        part = [entries[i] for i in idxs]
        try:
            part_results, mode = await run(part)
            modes.append(mode)
        except FhirError as exc:
            part_results = [_failed(e, exc) for e in part]
        for i, result in zip(idxs, part_results, strict=True):
            results[i] = result
    return results, _weakest([joined if m == "transaction" else m for m in modes])


async def _post(client: AsyncFhirClient, kind: str, entries: Sequence[BundleEntry]) -> list[WriteResult]:
    bundle = {"resourceType": "Bundle", "type": kind, "entry": [e.to_fhir() for e in entries]}
    body = await client.post_bundle(bundle, safe=all(e.safe_to_repeat for e in entries))
    return read_answers(kind, entries, body)


async def _singles(client: AsyncFhirClient, entries: Sequence[BundleEntry], *, ordered: bool) -> list[WriteResult]:
    """One request per entry. ``ordered`` (a transaction's stand-in): reference order, rewritten
    references, and stop at the first failure — the rest is reported as not attempted."""
    order = _reference_order(entries) if ordered else list(range(len(entries)))
    results: list[WriteResult] = [WriteResult(None)] * len(entries)
    assigned: dict[str, str] = {}
    for i in order:
        entry = entries[i].with_references(assigned)
        try:
            result = await client.execute(entry)
        except FhirError as exc:
            results[i] = _failed(entry, exc)
            if ordered:
                break
            continue
        results[i] = result
        if entry.full_url and result.resource_type and result.id:
            assigned[entry.full_url] = f"{result.resource_type}/{result.id}"
    return results


async def _retry_transient(
    client: AsyncFhirClient, entries: Sequence[BundleEntry], results: list[WriteResult]
) -> list[WriteResult]:
    """Send once more, as one batch, the entries that failed transiently and are safe to repeat (or
    were refused with 429, i.e. not attempted)."""
    policy = client.retry_policy
    again = [
        i
        for i, (e, r) in enumerate(zip(entries, results, strict=True))
        if r.status in policy.statuses and (e.safe_to_repeat or r.status in policy.not_applied)
    ]
    if not again or client.retry_policy.max_attempts < 2:
        return results
    await client.sleep(client.retry_policy.delay(1, None))
    try:
        retried = await _post(client, "batch", [entries[i] for i in again])
    except FhirError:  # the first answers stand; the batch as a whole was already applied
        return results
    merged = list(results)
    for i, result in zip(again, retried, strict=True):
        merged[i] = result
    return merged


async def _transaction(
    client: AsyncFhirClient, entries: list[BundleEntry], fallback: bool
) -> tuple[list[WriteResult], str]:
    caps = client.known_capabilities
    limit = client.transaction_limit if fallback else None
    declared = caps is None or caps.supports_transaction
    if declared and limit == 0:
        return await _without_transaction(client, entries)
    if declared and limit is not None and len(entries) > limit:
        return await _split(client, entries)
    try:
        if caps is not None:
            caps.ensure_system("transaction")
        return await _post(client, "transaction", entries), "transaction"
    except PayloadTooLarge as exc:
        if not fallback:
            raise
        if len(entries) == 1:  # one resource too large teaches nothing about the others
            return await _singles(client, entries, ordered=True), "single"
        client.learn_transaction_limit(limit_after_refusal(exc, len(entries)))
        return await _split(client, entries)
    except UnsupportedByServer as exc:
        if not fallback:
            raise
        client.learn_transaction_limit(limit_after_refusal(exc, len(entries)))
        return await _without_transaction(client, entries)


async def _without_transaction(client: AsyncFhirClient, entries: list[BundleEntry]) -> tuple[list[WriteResult], str]:
    """No transaction at all: a batch when no entry references another, else single requests in order."""
    caps = client.known_capabilities
    if not any(_dependencies(entries)) and (caps is None or caps.supports_batch):
        return await _batch(client, entries, True, None)
    return await _singles(client, entries, ordered=True), "single"


async def _split(client: AsyncFhirClient, entries: list[BundleEntry]) -> tuple[list[WriteResult], str]:
    """Several smaller transactions within the server's limit, in dependency order.

    Each part's references to entries of earlier parts are rewritten to the ids the server gave
    them; within a part, ``urn:uuid`` references stay for the server to resolve. A part refused
    again lowers the limit and the rest is planned anew; once part of the work is applied, a failing
    part is reported per entry and the parts after it are not attempted (they may depend on it).
    """
    results: list[WriteResult] = [WriteResult(None)] * len(entries)
    assigned: dict[str, str] = {}
    remaining = list(range(len(entries)))
    modes: list[str] = []
    while remaining:
        limit = client.transaction_limit
        current = [entries[i].with_references(assigned) for i in remaining]
        if not limit:  # no transactions (any more): the rest without one
            rest, mode = await _without_transaction(client, current)
            modes.append(mode)
            for i, result in zip(remaining, rest, strict=True):
                results[i] = result
            break
        if limit == 1:
            rest = await _singles(client, current, ordered=True)
            modes.append("single")
            for i, result in zip(remaining, rest, strict=True):
                results[i] = result
            break
        part = [remaining[j] for j in plan_parts(_dependencies(current), limit)[0]]
        sending = [entries[i].with_references(assigned) for i in part]
        try:
            answered = await _post(client, "transaction", sending)
        except (PayloadTooLarge, UnsupportedByServer) as exc:
            learnt = limit_after_refusal(exc, len(part))
            # Smaller parts are possible unless this one is a single entry or a reference cycle
            # already larger than the limit (it cannot be cut).
            if learnt is not None and (learnt.max_entries == 0 or 1 < len(part) <= limit):
                client.learn_transaction_limit(learnt)
                continue
            if not modes:
                raise
            for i, entry in zip(part, sending, strict=True):
                results[i] = _failed(entry, exc)
            break
        except FhirError as exc:
            if not modes:
                raise  # nothing was applied
            for i, entry in zip(part, sending, strict=True):
                results[i] = _failed(entry, exc)
            break
        modes.append("split-transaction")
        for i, entry, result in zip(part, sending, answered, strict=True):
            results[i] = result
            if entry.full_url and result.resource_type and result.id:
                assigned[entry.full_url] = f"{result.resource_type}/{result.id}"
        done = set(part)
        remaining = [i for i in remaining if i not in done]
    return results, _weakest(modes)


async def _batch(
    client: AsyncFhirClient, entries: list[BundleEntry], fallback: bool, max_entries: int | None
) -> tuple[list[WriteResult], str]:
    if max_entries and len(entries) > max_entries:
        parts = [list(range(i, min(i + max_entries, len(entries)))) for i in range(0, len(entries), max_entries)]
        return await _in_parts(entries, parts, lambda part: _batch(client, part, fallback, None), "batch")
    caps = client.known_capabilities
    guessed = fallback and caps is not None and not caps.supports_batch and caps.supports_transaction
    try:
        if client.refuses_batches or (caps is not None and not guessed):
            _ensure_batches(client, caps)
        results = await _post(client, "batch", entries)
    except PayloadTooLarge:
        if not fallback or len(entries) == 1:
            raise
        half = len(entries) // 2
        parts = [list(range(half)), list(range(half, len(entries)))]
        return await _in_parts(entries, parts, lambda part: _batch(client, part, fallback, None), "batch")
    except UnsupportedByServer as exc:
        if not fallback:
            raise
        if exc.status is not None:
            client.refuse_batches()
        return await _singles(client, entries, ordered=False), "single"
    except FhirError as exc:
        # A server whose statement lists ``transaction`` alone was asked for a batch on a guess: a
        # refusal of the whole Bundle (nothing applied) means it takes none; entries go on their own.
        if not guessed or exc.status not in _BUNDLE_KIND_REFUSALS:
            raise
        client.refuse_batches()
        return await _singles(client, entries, ordered=False), "single"
    return await _retry_transient(client, entries, results), "batch"


# What a server answers a Bundle kind it does not process, the Bundle being otherwise sound.
_BUNDLE_KIND_REFUSALS = frozenset({400, 404, 405, 415, 422, 501})


def _ensure_batches(client: AsyncFhirClient, caps: Capabilities | None) -> None:
    """Refuse before sending when this server takes no batch: it said so, or refused one already."""
    if client.refuses_batches:
        raise UnsupportedByServer("the server refused a batch earlier in this run")
    if caps is not None:
        caps.ensure_system("batch")


def _entries(entries: Sequence[BundleEntry | Mapping[str, Any]]) -> list[BundleEntry]:
    return [e if isinstance(e, BundleEntry) else BundleEntry.from_fhir(e) for e in entries]


async def send_transaction(
    client: AsyncFhirClient, entries: Sequence[BundleEntry | Mapping[str, Any]], *, fallback: bool = True
) -> BundleResult:
    """Send a transaction; with ``fallback``, split or degrade it when the server refuses it."""
    results, mode = await _transaction(client, _entries(entries), fallback)
    return BundleResult("transaction", mode, results)


async def send_batch(
    client: AsyncFhirClient,
    entries: Sequence[BundleEntry | Mapping[str, Any]],
    *,
    fallback: bool = True,
    max_entries: int | None = None,
) -> BundleResult:
    """Send a batch (in chunks of ``max_entries``); with ``fallback``, split or send entries singly."""
    results, mode = await _batch(client, _entries(entries), fallback, max_entries)
    return BundleResult("batch", mode, results)
