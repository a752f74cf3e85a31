"""One case as one FHIR ``transaction`` Bundle: idempotent, and safe against concurrent edits.

- A resource not yet on the server is ``POST``-ed with ``ifNoneExist: identifier=<system>|<value>``:
  running the same Bundle twice creates nothing twice.
- A resource already there (its base copy has an ``id``) is ``PUT Type/id`` with
  ``ifMatch: W/"<meta.versionId>"``: if someone changed it since, the server refuses instead of
  losing their edit. An update that changes nothing is left out (unless asked for).
- Every entry's ``fullUrl`` is the ``urn:uuid:`` of its business identifier; references to new
  resources use it, references to known ones use ``Type/id``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

from ..domain import Case
from ._base import ResourceKey
from ._case import map_case

__all__ = ["case_to_bundle", "if_none_exist"]


def if_none_exist(identifier_system: str, value: str) -> str:
    """The conditional-create criteria for a business identifier (reserved characters escaped)."""
    return f"identifier={quote(identifier_system, safe=':/')}|{quote(value, safe='')}"


def case_to_bundle(
    case: Case,
    version: str,
    identifier_system: str,
    base: Mapping[ResourceKey, Mapping[str, Any]] | None = None,
    *,
    server_ids: Mapping[ResourceKey, str] | None = None,
    include_unchanged: bool = False,
) -> dict[str, Any]:
    """A ``transaction`` Bundle that brings the server up to date with ``case``.

    ``base`` and ``server_ids`` are as for :func:`case_to_resources`. Resources whose update would
    equal their base copy are left out unless ``include_unchanged``.
    """
    resources, refs, ids = map_case(case, version, identifier_system, base, server_ids)
    base = {ResourceKey(*k): r for k, r in (base or {}).items()}
    entries: list[dict[str, Any]] = []
    for key, resource in resources.items():
        held = base.get(key)
        if held is not None and not include_unchanged and resource == held:
            continue
        server_id = ids.get(key)
        if server_id:
            request: dict[str, str] = {"method": "PUT", "url": f"{key.type}/{server_id}"}
            meta = (held or {}).get("meta")
            version_id = meta.get("versionId") if isinstance(meta, Mapping) else None
            if version_id:
                request["ifMatch"] = f'W/"{version_id}"'
        else:
            request = {"method": "POST", "url": key.type, "ifNoneExist": if_none_exist(identifier_system, key.value)}
        entries.append({"fullUrl": refs.full_url(key), "resource": resource, "request": request})
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
