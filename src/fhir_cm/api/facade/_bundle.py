"""Searchset Bundles: one page of matches, the paging links and what the search left out.

Pages are cut by ``_offset`` over the matches in id order; ``next``/``previous``/``first``/``last``
links repeat the parameters the search used (never the ones it ignored) with another offset, so a
client follows them verbatim, as the FHIR paging rules ask. Offsets are not snapshots: a case saved
between two pages can shift what the next page holds, as on most FHIR servers.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode


from ... import decimals
from ._errors import issue, operation_outcome
from ._indexed import Indexed
from ._match import sort_text
from ._negotiation import FhirVersion
from ._params import SearchRequest
from ._summary import shape_resource

__all__ = ["page_of", "searchset", "sort_matches"]


def _link(url: str, request: SearchRequest, offset: int) -> str:
    params = [*request.link_params, ("_count", str(request.count))]
    if offset:
        params.append(("_offset", str(offset)))
    return f"{url}?{urlencode(params)}"


def _links(url: str, request: SearchRequest, total: int) -> list[dict[str, str]]:
    count, offset = request.count, request.offset
    links = [{"relation": "self", "url": _link(url, request, offset)}]
    if count == 0:
        return links
    last = max(0, (total - 1) // count * count)
    links.append({"relation": "first", "url": _link(url, request, 0)})
    if offset > 0:
        links.append({"relation": "previous", "url": _link(url, request, min(max(0, offset - count), last))})
    if offset + count < total:
        links.append({"relation": "next", "url": _link(url, request, offset + count)})
    links.append({"relation": "last", "url": _link(url, request, last)})
    return links


def _outcome(resource_type: str, request: SearchRequest, unmapped_cases: int) -> dict[str, Any] | None:
    issues = [
        issue(
            "warning", "not-supported", f"search parameter {name} is not supported for {resource_type} and was ignored"
        )
        for name in request.ignored
    ]
    issues += [
        issue(
            "information",
            "informational",
            f"_revinclude={value}: this facade holds no Provenance; the FHIR server the adapter writes to does",
        )
        for value in request.empty_revincludes
    ]
    if unmapped_cases:
        issues.append(
            issue(
                "warning",
                "incomplete",
                f"{unmapped_cases} case(s) in the store could not be mapped to FHIR and are left out",
            )
        )
    return operation_outcome(issues) if issues else None


def sort_matches(matches: Sequence[Indexed], sort: Sequence[tuple[str, bool]]) -> list[Indexed]:
    """``_sort``: by each key in turn (a later key breaks the ties of an earlier one), else by id."""
    ordered = list(matches)
    for name, descending in reversed(sort):
        if name == "_id":
            ordered.sort(key=lambda r: r.id, reverse=descending)
        elif name == "_lastUpdated":
            ordered.sort(key=lambda r: r.last_updated, reverse=descending)
        else:
            # The first value (a token's, a date's start); resources without one go last whichever the direction.
            present = [r for r in ordered if r.values.get(name)]
            absent = [r for r in ordered if not r.values.get(name)]
            present.sort(key=lambda r: sort_text(r.values[name][0]), reverse=descending)
            ordered = present + absent
    return ordered


def page_of(matches: Sequence[Indexed], request: SearchRequest) -> list[Indexed]:
    """The resources on the page asked for (none for ``_summary=count``)."""
    if request.summary_count:
        return []
    return list(matches[request.offset : request.offset + request.count])


def searchset(
    url: str,
    resource_type: str,
    request: SearchRequest,
    matches: Sequence[Indexed],
    *,
    version: FhirVersion,
    unmapped_cases: int = 0,
    included: Sequence[Indexed] = (),
) -> tuple[bytes, list[Indexed]]:
    """The searchset Bundle (JSON) of one page of ``matches`` (already sorted), with the ``included``
    resources, and the resources on that page.

    ``url`` is the search URL without its query (``…/fhir/Goal``); entries' ``fullUrl`` is ``url/id``.
    ``_summary`` shapes every resource of the Bundle, included ones too; ``_elements`` the matches
    only (it names elements of the type searched), as HAPI serves both.
    """
    page = page_of(matches, request)
    base = url.rsplit("/", 1)[0]
    summary = request.summary

    entries: list[dict[str, Any]] = [
        {
            "fullUrl": f"{url}/{r.id}",
            "resource": shape_resource(r.body, version, summary=summary, elements=request.elements),
            "search": {"mode": "match"},
        }
        for r in page
    ]
    entries += [
        {
            "fullUrl": f"{base}/{r.type}/{r.id}",
            "resource": shape_resource(r.body, version, summary=summary),
            "search": {"mode": "include"},
        }
        for r in included
    ]
    outcome = _outcome(resource_type, request, unmapped_cases)
    if outcome is not None:
        entries.append({"resource": outcome, "search": {"mode": "outcome"}})
    bundle: dict[str, Any] = {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "meta": {"lastUpdated": dt.datetime.now(dt.UTC).isoformat()},
        "type": "searchset",
        "total": len(matches),
        "link": _links(url, request, len(matches)),
    }
    if entries:
        bundle["entry"] = entries
    return decimals.dumps(bundle), page
