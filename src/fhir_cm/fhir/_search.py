"""Fluent searches that stream page by page, following the server's paging links safely.

``client.search("CarePlan", patient="Patient/1", status="active").count(50)`` builds a query; nothing
is sent until it is iterated. Iteration fetches one page at a time (memory stays one page, however
long the result), follows ``Bundle.link[next]`` exactly as the server wrote it — absolute,
host-relative or HAPI's ``[base]?_getpages=…`` — but only on the base's own origin, never in a loop,
and never beyond a page cap.

Entries are plain dicts unless ``.validated()`` asks for fhir.resources models. Validation is
lenient: an entry that fails it is *quarantined* (reported with type, id and reason, never raised)
and the rest of the page goes on, because shared servers hold data that breaks strict parsers.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

import httpx
from pydantic import ValidationError

from ._capabilities import FhirRelease, model_class
from ._validate import validate
from ._errors import (
    AmbiguousMatch,
    InvalidResponse,
    PageLimitExceeded,
    ResourceNotFound,
    UnsafeLink,
    UnsupportedByServer,
    redact,
)
from ._urls import check_type, origin, resolve_link, shown_origin

if TYPE_CHECKING:
    from ._client import AsyncFhirClient

__all__ = ["HistorySet", "Page", "Quarantined", "SearchSet", "search_value"]

log = logging.getLogger("fhir_cm.fhir")

R = TypeVar("R")
DEFAULT_MAX_PAGES = 1000


@dataclass(frozen=True)
class Quarantined:
    """A server resource that failed validation: kept out of the results, reported with the reason."""

    resource_type: str | None
    id: str | None
    reason: str
    resource: Any = field(default=None, repr=False)


@dataclass(frozen=True)
class Page(Generic[R]):
    """One searchset/history page: matches and includes (dicts or models), quarantine, outcome issues.

    ``url`` is where the page came from (for the first page, without its query: it may name a
    patient); ``entries`` are the raw ``Bundle.entry`` dicts, which is what a history walks.
    ``last_updated`` is the Bundle's ``meta.lastUpdated`` as the server sent it: its own time of
    the search (HAPI, sekmet), the one clock a watermark may be taken from besides its resources'.
    ``date`` is the answer's HTTP ``Date`` (an ISO instant, to the second): the server's clock too,
    for a server whose Bundles carry no time.
    """

    number: int
    url: str
    total: int | None
    matches: list[R]
    included: list[R]
    quarantined: list[Quarantined]
    issues: list[dict[str, Any]]
    entries: list[dict[str, Any]] = field(repr=False)
    next_url: str | None = None
    last_updated: str | None = None
    date: str | None = None

    @property
    def resources(self) -> list[R]:
        return [*self.matches, *self.included]


def search_value(value: Any) -> str:
    """Render a Python value as a FHIR search value: lists OR-join, dates go ISO, bools lower-case."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("search on a datetime needs a timezone (a naive time is ambiguous)")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, list | tuple | set | frozenset):
        return ",".join(search_value(v) for v in value)
    return str(value)


def _param_name(keyword: str) -> str:
    """Python keyword → FHIR name: ``lifecycle_status`` → ``lifecycle-status``, ``code__in`` → ``code:in``."""
    lead = "_" if keyword.startswith("_") else ""
    body = keyword[len(lead) :].replace("__", ":").replace("_", "-")
    return lead + body


def _array(bundle: Mapping[str, Any], name: str) -> list[Any]:
    """``Bundle.entry`` or ``Bundle.link``: a JSON array, or absent."""
    value = bundle.get(name)
    if value is None:
        return []
    if not isinstance(value, list):
        raise InvalidResponse(f"the Bundle's {name} is not an array")
    return value


_NESTED_UNKNOWN = "a resource inside it (contained, or an entry) is of no {} resource type"


def _validation_reason(exc: ValidationError) -> str:
    """Where and why validation failed, without the offending values (they may be PHI)."""
    parts = [f"{'.'.join(str(p) for p in err['loc']) or '<root>'}: {err['msg']}" for err in exc.errors()[:3]]
    more = exc.error_count() - len(parts)
    return redact("; ".join(parts) + (f" (+{more} more)" if more > 0 else ""), limit=300)


class _Validator:
    """Validates resources with the release's models; failures become ``Quarantined``."""

    def __init__(self, release: FhirRelease, on_quarantine: Callable[[Quarantined], None] | None) -> None:
        self.release = release
        self.on_quarantine = on_quarantine

    def __call__(self, resource: Mapping[str, Any]) -> Any | Quarantined:
        rtype, rid = resource.get("resourceType"), resource.get("id")
        try:
            return validate(model_class(self.release, str(rtype)), resource)
        except UnsupportedByServer as exc:
            return self._quarantine(rtype, rid, str(exc), resource)
        except ValidationError as exc:
            return self._quarantine(rtype, rid, _validation_reason(exc), resource)
        except (KeyError, TypeError):
            # fhir.resources picks a nested resource's model (``contained``, a Bundle's entries) by
            # its resourceType and raises these, not a ValidationError, for one it has no model for
            # (an R5 type inside an R4 resource, a number): without this the whole search failed.
            return self._quarantine(rtype, rid, _NESTED_UNKNOWN.format(self.release), resource)

    def _quarantine(self, rtype: Any, rid: Any, reason: str, resource: Any) -> Quarantined:
        item = Quarantined(
            rtype if isinstance(rtype, str) else None, rid if isinstance(rid, str) else None, reason, resource
        )
        log.warning("quarantined %s/%s: %s", item.resource_type, item.id, reason)
        if self.on_quarantine is not None:
            self.on_quarantine(item)
        return item


class _PagedSet(Generic[R]):
    """Paging shared by searches and histories: first request, then next links, safely."""

    def __init__(
        self,
        client: AsyncFhirClient,
        *,
        max_pages: int = DEFAULT_MAX_PAGES,
        validate: bool = False,
        on_quarantine: Callable[[Quarantined], None] | None = None,
    ) -> None:
        self._client = client
        self._max_pages = max_pages
        self._validate = validate
        self._on_quarantine = on_quarantine
        self._prefetch = False
        self._to_total = False

    def _copy(self, **changes: Any) -> Self:
        clone = object.__new__(type(self))
        clone.__dict__.update(self.__dict__)
        clone.__dict__.update(changes)
        return clone

    def limit_pages(self, max_pages: int) -> Self:
        """Stop with ``PageLimitExceeded`` rather than fetch more than ``max_pages`` pages."""
        if max_pages < 1:
            raise ValueError("max_pages must be at least 1")
        return self._copy(_max_pages=max_pages)

    def until_total(self) -> Self:
        """Let the page cap give way to the server's own count: past ``max_pages`` pages, paging
        goes on while the ``Bundle.total`` it stated is more than the matches given so far and
        each page brings some (a server paging forever states no such count, or stops bringing
        any). For a reader that must see a result to its end and whose memory does not grow with
        the pages: a pull moves a type's watermark only once it has read the type to its end, so
        a type of more than the cap's worth failed every pull at the same page, never to move."""
        return self._copy(_to_total=True)

    def prefetch(self) -> Self:
        """Ask for the next page as soon as a page is parsed, before it is handed over: the server
        works on the next page while the caller works on this one. Worth it for a caller that does
        its work off the event loop (in a thread) or awaits while it works; one page more is held."""
        return self._copy(_prefetch=True)

    async def _start(self) -> tuple[str, list[tuple[str, str]]]:
        """Path below the base and query of the first page (checks run here, before sending)."""
        raise NotImplementedError

    async def pages(self) -> AsyncIterator[Page[R]]:
        """Fetch and yield pages one at a time until there is no next link."""
        client = self._client
        validator = _Validator(await client.release(), self._on_quarantine) if self._validate else None
        path, params = await self._start()
        url = f"{client.base_url}/{path}" if path else client.base_url
        bundle, date = await client.get_bundle(url, params)
        seen: set[str] = set()
        number = 1
        given, stated = 0, None  # matches given so far, and the total the server said there are
        while True:
            page = self._parse(bundle, number, url, validator, date)
            brought = len(page.matches) + len(page.quarantined)
            given += brought
            stated = page.total if page.total is not None else stated
            capped = number >= self._max_pages and not (
                self._to_total and stated is not None and brought > 0 and given < stated
            )
            ahead: asyncio.Task[tuple[dict[str, Any], str | None]] | None = None
            refused: UnsafeLink | None = None  # said once the page is read, as without read-ahead
            if self._prefetch and page.next_url is not None and not capped:
                try:
                    url = self._next(page.next_url, seen)
                except UnsafeLink as exc:
                    refused = exc
                else:
                    ahead = asyncio.ensure_future(client.get_bundle(url, None))
            try:
                yield page
            except BaseException:  # the caller stopped early (or failed): not the page it will not read
                if ahead is not None:
                    ahead.cancel()
                raise
            if page.next_url is None:
                return
            if refused is not None:
                raise refused
            if capped:
                raise PageLimitExceeded(f"search has more than {self._max_pages} pages; stopped at the cap")
            number += 1
            if ahead is not None:
                bundle, date = await ahead
            else:
                url = self._next(page.next_url, seen)
                bundle, date = await client.get_bundle(url, None)

    def _next(self, link: str, seen: set[str]) -> str:
        """Resolve a next link; refuse other origins (the token must not leak) and loops."""
        base = self._client.base_url
        try:
            url = resolve_link(base, link)
            elsewhere = origin(url) != origin(base)
        except (ValueError, httpx.InvalidURL):
            raise UnsafeLink("next link is not a URL; not followed") from None
        if elsewhere:
            # Named by origin only (its path and query may carry identifiers): a server behind a
            # proxy that writes its own address into its links (HAPI's server_address, an internal
            # host or http for https) is then a setting to correct, not a mystery.
            raise UnsafeLink(
                f"next link leaves the FHIR server's origin ({shown_origin(url)}, not {shown_origin(base)}); not followed: "
                "the server names itself by another address than the configured base"
            )
        if url in seen:
            raise UnsafeLink("next link repeats an earlier page; not followed (the server ignores paging)")
        seen.add(url)
        return url

    def _parse(
        self, bundle: Mapping[str, Any], number: int, url: str, validator: _Validator | None, date: str | None = None
    ) -> Page[R]:
        matches: list[Any] = []
        included: list[Any] = []
        quarantined: list[Quarantined] = []
        issues: list[dict[str, Any]] = []
        entries = [e for e in _array(bundle, "entry") if isinstance(e, dict)]
        for entry in entries:
            resource = entry.get("resource")
            search = entry.get("search")
            mode = search.get("mode", "match") if isinstance(search, dict) else "match"
            if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
                if self._needs_resource(entry):
                    quarantined.append(Quarantined(None, None, "entry has no resource"))
                continue
            if mode == "outcome" or resource["resourceType"] == "OperationOutcome":
                issue = resource.get("issue")
                if isinstance(issue, list):
                    issues.extend(i for i in issue if isinstance(i, dict))
                continue
            item: Any = resource
            if validator is not None:
                item = validator(resource)
                if isinstance(item, Quarantined):
                    quarantined.append(item)
                    continue
            (included if mode == "include" else matches).append(item)
        if issues:
            log.info("server attached %d outcome issue(s) to a page of results", len(issues))
        next_url = next(
            (
                link.get("url")
                for link in _array(bundle, "link")
                if isinstance(link, dict) and link.get("relation") == "next"
            ),
            None,
        )
        if next_url is not None and not isinstance(next_url, str):
            raise InvalidResponse("the page's next link has no URL")
        total = bundle.get("total")
        meta = bundle.get("meta")
        stamp = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
        return Page(
            number=number,
            url=url,
            total=total if isinstance(total, int) else None,
            matches=matches,
            included=included,
            quarantined=quarantined,
            issues=issues,
            entries=entries,
            next_url=next_url or None,
            last_updated=stamp if isinstance(stamp, str) else None,
            date=date,
        )

    def _needs_resource(self, entry: Mapping[str, Any]) -> bool:
        return True


class SearchSet(_PagedSet[R]):
    """A type-level search. Builder methods return a new set; iterating runs it.

    ``async for resource in search`` yields matches and ``_include``d resources in page order;
    ``pages()`` keeps them apart and also reports quarantined entries and outcome issues.
    """

    def __init__(
        self,
        client: AsyncFhirClient,
        resource_type: str,
        params: Iterable[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(client, **kwargs)
        self.resource_type = check_type(resource_type)
        self._params: tuple[tuple[str, str], ...] = tuple(params)

    @property
    def params(self) -> tuple[tuple[str, str], ...]:
        """The query as (name, value) pairs, repeated names allowed (``date=ge…&date=le…``)."""
        return self._params

    def search(self, **params: Any) -> Self:
        """Add parameters by keyword: ``patient="Patient/1"``, ``lifecycle_status="active"``,
        ``code__in=valueset``; a list ORs its values; None is skipped."""
        added = tuple((_param_name(k), search_value(v)) for k, v in params.items() if v is not None)
        return self._copy(_params=self._params + added)

    def where(self, name: str, value: Any) -> Self:
        """Add one parameter by its FHIR name (modifiers, chains, ``_has:…``)."""
        return self._copy(_params=(*self._params, (name, search_value(value))))

    def _replace(self, name: str, value: str) -> Self:
        kept = tuple(p for p in self._params if p[0] != name)
        return self._copy(_params=(*kept, (name, value)))

    def count(self, page_size: int) -> Self:
        """Ask for ``page_size`` entries per page (``_count``)."""
        return self._replace("_count", str(int(page_size)))

    def include(self, *specs: str, iterate: bool = False) -> Self:
        """``_include`` (e.g. ``"CarePlan:goal"``); ``iterate`` follows includes of includes."""
        name = "_include:iterate" if iterate else "_include"
        return self._copy(_params=self._params + tuple((name, s) for s in specs))

    def revinclude(self, *specs: str, iterate: bool = False) -> Self:
        """``_revinclude`` (e.g. ``"Provenance:target"``)."""
        name = "_revinclude:iterate" if iterate else "_revinclude"
        return self._copy(_params=self._params + tuple((name, s) for s in specs))

    def sort(self, *keys: str) -> Self:
        """``_sort``; prefix a key with ``-`` for descending."""
        return self._replace("_sort", ",".join(keys))

    def last_updated(
        self,
        *,
        gt: datetime | str | None = None,
        ge: datetime | str | None = None,
        lt: datetime | str | None = None,
        le: datetime | str | None = None,
    ) -> Self:
        """``_lastUpdated`` bounds, for incremental polling (``gt`` = the previous bundle's time)."""
        bounds = (("gt", gt), ("ge", ge), ("lt", lt), ("le", le))
        added = tuple(("_lastUpdated", prefix + search_value(v)) for prefix, v in bounds if v is not None)
        return self._copy(_params=self._params + added)

    def total(self, mode: str = "accurate") -> Self:
        """``_total`` (HAPI often omits ``Bundle.total`` unless asked)."""
        return self._replace("_total", mode)

    def validated(self, on_quarantine: Callable[[Quarantined], None] | None = None) -> SearchSet[Any]:
        """Yield fhir.resources models of the server's release; invalid entries are quarantined."""
        return self._copy(_validate=True, _on_quarantine=on_quarantine)

    async def _start(self) -> tuple[str, list[tuple[str, str]]]:
        caps = self._client.known_capabilities
        if caps is not None:
            caps.ensure_search(self.resource_type, self._params)
        return self.resource_type, list(self._params)

    async def __aiter__(self) -> AsyncIterator[R]:
        async for page in self.pages():
            for resource in page.resources:
                yield resource

    async def fetch_all(self) -> list[R]:
        """Every result in memory — for small, bounded searches only."""
        return [resource async for resource in self]

    async def first(self) -> R | None:
        """The first match, fetching a single one-entry page."""
        async for page in self.count(1).limit_pages(1).pages():
            return page.matches[0] if page.matches else None
        return None

    async def get(self) -> R:
        """Exactly one match, else ``ResourceNotFound`` (none) or ``AmbiguousMatch`` (several)."""
        async for page in self.count(2).limit_pages(1).pages():
            if len(page.matches) > 1 or (page.total or 0) > 1:
                raise AmbiguousMatch(
                    f"search on {self.resource_type} matched more than one resource", resource_type=self.resource_type
                )
            if page.matches:
                return page.matches[0]
        raise ResourceNotFound(f"search on {self.resource_type} matched nothing", resource_type=self.resource_type)


class HistorySet(_PagedSet[dict[str, Any]]):
    """Instance, type or system history; yields the raw entries (``resource`` is absent on deletes)."""

    def __init__(
        self,
        client: AsyncFhirClient,
        resource_type: str | None = None,
        resource_id: str | None = None,
        params: Iterable[tuple[str, str]] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(client, **kwargs)
        self.resource_type = resource_type
        self.resource_id = resource_id
        self._params = tuple(params)

    async def _start(self) -> tuple[str, list[tuple[str, str]]]:
        caps = self._client.known_capabilities
        if caps is not None and self.resource_type:
            interaction = "history-instance" if self.resource_id else "history-type"
            caps.ensure_supported(self.resource_type, interaction)
        path = "/".join(p for p in (self.resource_type, self.resource_id, "_history") if p)
        return path, list(self._params)

    def _needs_resource(self, entry: Mapping[str, Any]) -> bool:
        return False

    async def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        async for page in self.pages():
            for entry in page.entries:
                yield entry
