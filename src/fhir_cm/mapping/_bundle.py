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

from ..domain import Case
from ._base import ResourceKey
from ._case import map_case
from ._entries import plan_entry

__all__ = ["case_to_bundle"]


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

    ``base`` and ``server_ids`` are as for :func:`case_to_resources` (the entries' resources share
    with ``base`` what they do not change); each entry is planned by
    :func:`plan_entry`, the rule the push follows. Resources whose update would equal their base
    copy are left out unless ``include_unchanged``.
    """
    resources, refs, ids = map_case(case, version, identifier_system, base, server_ids)
    held = {ResourceKey(*k): r for k, r in (base or {}).items()}
    entries: list[dict[str, Any]] = []
    for key, resource in resources.items():
        planned = plan_entry(
            key,
            resource,
            identifier_system,
            refs.full_url(key),
            base=held.get(key),
            server_id=ids.get(key),
            include_unchanged=include_unchanged,
        )
        if planned is not None:
            entries.append(planned.as_fhir())
    return {"resourceType": "Bundle", "type": "transaction", "entry": entries}
