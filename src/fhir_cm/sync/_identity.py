"""How the pusher finds a resource on a server again when its ledger does not know it.

Idempotency rests on this: a push re-run from the same store, or from a brand-new one, must land on
the resources the first run wrote. Two ways, chosen per resource type from the server's
CapabilityStatement:

* **by business identifier** — conditional create (``ifNoneExist: identifier=<system>|<value>``)
  where the server declares the ``identifier`` search parameter for the type;
* **by a stable id** — where it does not (sekmet leaves Goal and CareTeam out of its statement and
  refuses the search; R4 Provenance has no identifier at all), the resource gets a client-assigned
  id derived from its business identifier (the uuid5 its ``urn:uuid`` fullUrl already uses) and is
  written with ``PUT Type/<id>`` (update-as-create). The same key always gives the same id, so a
  repeat writes a new version of the same resource, never a second one. Before creating, the pusher
  reads ``Type/<id>`` so an existing copy is merged onto, not overwritten.

A server that declares ``identifier`` but ignores it would match every resource of the type: that
cannot be detected here and is not supported.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from ..fhir import AsyncFhirClient, BundleEntry, Capabilities, FhirError
from ..mapping import References, ResourceKey, replace_references

__all__ = ["Identity", "find_by_identifier", "read_existing", "rewrite_references", "stable_id"]


def stable_id(identifier_system: str, key: ResourceKey) -> str:
    """The client-assigned id of a resource: the uuid5 of its business identifier (36 characters)."""
    return References(identifier_system).full_url(key).removeprefix("urn:uuid:")


class Identity:
    """Per resource type: found by identifier (conditional create) or by a stable id (PUT)."""

    def __init__(self, capabilities: Capabilities | None, identifier_system: str) -> None:
        self._caps = capabilities
        self.system = identifier_system
        self._memo: dict[str, bool] = {}

    def by_identifier(self, resource_type: str) -> bool:
        """Whether a conditional create on ``identifier`` works for this type on this server: the
        parameter declared, and conditional creates not refused (``conditionalCreate: false``)."""
        if resource_type == "Provenance":
            return False  # R4 Provenance has no identifier element
        found = self._memo.get(resource_type)
        if found is None:
            caps = self._caps
            entry = caps.resource(resource_type) if caps is not None else None
            found = caps is None or (
                caps.declares_search_param(resource_type, "identifier")
                and (entry is None or entry.conditional_create is not False)
            )
            self._memo[resource_type] = found
        return found

    def stable_id(self, key: ResourceKey) -> str:
        return stable_id(self.system, key)


async def read_existing(
    client: AsyncFhirClient,
    targets: Iterable[tuple[str, str]],
    refused: dict[tuple[str, str], FhirError] | None = None,
) -> tuple[dict[tuple[str, str], dict[str, Any]], set[tuple[str, str]]]:
    """Read ``(type, id)`` targets in one batch: ``(found copies, missing)``.

    A target neither found nor missing (a transient failure, an unusable id) is in neither, and the
    caller must not assume it absent; the server's error for it goes into ``refused``, if given.
    """
    wanted = list(dict.fromkeys(targets))
    entries, sent = [], []
    missing: set[tuple[str, str]] = set()
    for rtype, rid in wanted:
        try:
            entries.append(BundleEntry.read(rtype, rid))
            sent.append((rtype, rid))
        except ValueError:  # not a valid FHIR id: it cannot exist on any server
            missing.add((rtype, rid))
    found: dict[tuple[str, str], dict[str, Any]] = {}
    if not entries:
        return found, missing
    try:
        result = await client.batch(entries, max_entries=100)
    except FhirError as exc:
        if refused is not None:
            refused |= dict.fromkeys(sent, exc)
        return found, missing
    for target, outcome in zip(sent, result.entries, strict=True):
        if outcome.ok and outcome.resource is not None:
            found[target] = outcome.resource
        elif outcome.status in (404, 410):
            missing.add(target)
        elif outcome.error is not None and refused is not None:
            refused[target] = outcome.error
    return found, missing


#: Identifiers per search of ``find_by_identifier`` (``identifier=a,b,…``: one search, not one per key).
FIND_CHUNK = 40


async def find_by_identifier(
    client: AsyncFhirClient, identifier_system: str, keys: Iterable[ResourceKey]
) -> dict[ResourceKey, dict[str, Any]]:
    """The single match of each key on the server, found with one search per type and
    ``FIND_CHUNK`` keys (``Type?identifier=<system>|<a>,<system>|<b>…``, FHIR's OR), in one batch.

    A key with no match, several matches or a failed search is left out: the conditional create
    that follows settles it (creates, matches, or refuses an ambiguous match).
    """
    wanted = list(dict.fromkeys(keys))
    if not wanted:
        return {}
    by_type: dict[str, list[str]] = {}
    for key in wanted:
        by_type.setdefault(key.type, []).append(key.value)
    searches: list[tuple[str, list[str]]] = []
    for rtype, values in by_type.items():
        for at in range(0, len(values), FIND_CHUNK):
            searches.append((rtype, values[at : at + FIND_CHUNK]))
    entries = [BundleEntry("GET", _search_url(rtype, identifier_system, chunk)) for rtype, chunk in searches]
    try:
        result = await client.batch(entries, max_entries=100)
    except FhirError:
        return {}
    matches: dict[ResourceKey, list[dict[str, Any]]] = {}
    for (rtype, chunk), outcome in zip(searches, result.entries, strict=True):
        asked = set(chunk)
        bundle = outcome.resource if outcome.ok else None
        if any(
            isinstance(link, Mapping) and link.get("relation") == "next" for link in (bundle or {}).get("link") or ()
        ):
            continue  # more matches than asked room for: some key is matched many times; let creates settle it
        for e in (bundle or {}).get("entry") or ():
            resource = e.get("resource") if isinstance(e, Mapping) else None
            if not isinstance(resource, Mapping) or resource.get("resourceType") != rtype:
                continue
            if (e.get("search") or {}).get("mode", "match") != "match":
                continue
            for value in _our_values(resource, identifier_system) & asked:
                matches.setdefault(ResourceKey(rtype, value), []).append(dict(resource))
    return {key: found[0] for key, found in matches.items() if len(found) == 1}


def _search_url(rtype: str, identifier_system: str, values: list[str]) -> str:
    system = quote(identifier_system, safe=":/")
    tokens = ",".join(f"{system}|{quote(v, safe='')}" for v in values)
    return f"{rtype}?identifier={tokens}&_count={2 * len(values)}"  # room to see a key matched twice


def _our_values(resource: Mapping[str, Any], identifier_system: str) -> set[str]:
    return {
        str(i["value"])
        for i in resource.get("identifier") or ()
        if isinstance(i, Mapping) and i.get("system") == identifier_system and "value" in i
    }


def rewrite_references(node: Any, mapping: Mapping[str, str]) -> Any:
    """``node`` with every ``reference`` found in ``mapping`` pointed at its replacement.

    ``node`` itself is not changed: what holds a rewritten reference is copied, the rest is shared
    (see :func:`fhir_cm.mapping.replace_references`); ``node`` itself when nothing is rewritten.
    """
    return replace_references(node, lambda reference: mapping.get(reference["reference"]))
