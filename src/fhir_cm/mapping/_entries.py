"""What a push sends for each resource of a case: the one rule both ``push`` and ``fhir-cm map`` follow.

- A resource with a known server copy is ``PUT Type/<its id>`` with ``If-Match: W/"<versionId>"``, so
  a change someone made since is refused rather than lost; one whose content (everything but ``id``
  and ``meta``) equals that copy is not sent at all.
- A resource to be created under an id the client chose (servers that do not search by identifier)
  is ``PUT Type/<stable id>``.
- Any other resource is ``POST``-ed with ``ifNoneExist: identifier=<system>|<value>``: sending the
  same entry twice creates nothing twice. Its ``fullUrl`` is the ``urn:uuid:`` other entries of the
  transaction reference it by.

The push adds what only a server conversation knows (ids the server assigned to parties, other
systems' records, merge results) before it asks for the entry; the rule itself lives here once.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import quote

from ._base import ResourceKey

__all__ = ["PlannedEntry", "if_none_exist", "plan_entry", "same_content"]

_NOT_CONTENT = frozenset({"id", "meta"})


def if_none_exist(identifier_system: str, value: str) -> str:
    """The conditional-create criteria for a business identifier (reserved characters escaped)."""
    return f"identifier={quote(identifier_system, safe=':/')}|{quote(value, safe='')}"


def same_content(resource: Mapping[str, Any], other: Mapping[str, Any]) -> bool:
    """Equal but for ``id`` and ``meta``, which a server stamps without the content changing."""
    if resource.keys() - _NOT_CONTENT != other.keys() - _NOT_CONTENT:
        return False
    return all(resource[k] == other[k] for k in resource.keys() - _NOT_CONTENT)


@dataclass(frozen=True)
class PlannedEntry:
    """One transaction entry: the request and the resource it carries."""

    key: ResourceKey
    method: Literal["POST", "PUT"]
    url: str
    resource: dict[str, Any] = field(repr=False)
    full_url: str
    kind: Literal["create", "update"]
    if_match: str | None = None
    if_none_exist: str | None = None

    def as_fhir(self) -> dict[str, Any]:
        """The entry as a FHIR ``Bundle.entry``."""
        request: dict[str, str] = {"method": self.method, "url": self.url}
        if self.if_match:
            request["ifMatch"] = self.if_match
        if self.if_none_exist:
            request["ifNoneExist"] = self.if_none_exist
        return {"fullUrl": self.full_url, "resource": self.resource, "request": request}


def plan_entry(
    key: ResourceKey,
    resource: dict[str, Any],
    identifier_system: str,
    full_url: str,
    *,
    base: Mapping[str, Any] | None = None,
    server_id: str | None = None,
    include_unchanged: bool = False,
) -> PlannedEntry | None:
    """The entry that brings the server's copy of ``key`` to ``resource``, or None if it already is.

    ``base`` is the last known server copy; ``server_id`` the id to create it under when the server
    is not searched by identifier (ignored when ``base`` has an id).
    """
    base_id = base.get("id") if base is not None else None
    if base is not None and isinstance(base_id, str) and base_id:
        if not include_unchanged and same_content(resource, base):
            return None
        meta = base.get("meta")
        version = meta.get("versionId") if isinstance(meta, Mapping) else None
        if_match = f'W/"{version}"' if version else None
        return PlannedEntry(key, "PUT", f"{key.type}/{base_id}", resource, full_url, "update", if_match)
    if server_id:
        return PlannedEntry(key, "PUT", f"{key.type}/{server_id}", resource, full_url, "create")
    resource.pop("id", None)  # the server assigns it
    criteria = if_none_exist(identifier_system, key.value)
    return PlannedEntry(key, "POST", key.type, resource, full_url, "create", if_none_exist=criteria)
