"""References: between a case's own resources (by key), and to the parties a case names.

A case's resources point at each other through one :class:`References` object, so the same builder
serves a transaction (``urn:uuid:`` of a deterministic uuid5 of the business identifier) and
resources already on a server (``Type/id``). Reading goes the other way: any of those spellings,
an absolute URL or a versioned reference resolve back to the key — an absolute URL only at the base
the resources came from, when the reader is told it (``References(bases=…)``): another server's
``Goal/x`` is not the case's Goal x.
"""

from __future__ import annotations

import hashlib
import re
import uuid
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping
from typing import Any

from ..domain import Party, PartyKind
from ._base import ResourceKey

__all__ = [
    "ELSEWHERE",
    "PATIENT_PATHS",
    "References",
    "foreign_reference",
    "full_url_bases",
    "iter_references",
    "local_reference",
    "parse_reference",
    "party_reference",
    "patient_of",
    "reference_base",
    "read_party",
    "replace_references",
]

#: The elements that name the Patient a resource is about, in the order they are tried.
PATIENT_PATHS = ("patient", "subject", "for")

_PARTY_TYPES: dict[PartyKind, str] = {
    PartyKind.PATIENT: "Patient",
    PartyKind.PRACTITIONER: "Practitioner",
    PartyKind.ORGANISATION: "Organization",
    PartyKind.RELATED_PERSON: "RelatedPerson",
}
_PARTY_KINDS = {t: k for k, t in _PARTY_TYPES.items()}
_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_TYPE = re.compile(r"^[A-Z][A-Za-z]+$")


def parse_reference(reference: str | None) -> tuple[str, str] | None:
    """``(type, id)`` of a literal reference (relative, absolute or versioned), else None."""
    if not reference or reference.startswith(("#", "urn:")):
        return None
    parts = reference.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    if len(parts) < 2 or not _TYPE.match(parts[-2]) or not _ID.match(parts[-1]):
        return None
    return parts[-2], parts[-1]


def reference_base(reference: str) -> str | None:
    """The service base an absolute literal reference names (``https://x.org/fhir`` of
    ``https://x.org/fhir/Patient/1/_history/2``), else None (relative, ``urn:``, ``#``)."""
    if "://" not in reference or parse_reference(reference) is None:
        return None
    parts = reference.split("?", 1)[0].rstrip("/").split("/")
    if len(parts) >= 4 and parts[-2] == "_history":
        parts = parts[:-2]
    return "/".join(parts[:-2])


def base_key(base: str) -> str:
    """A service base as compared: without a trailing slash, case-folded (the pull, the screening and
    the FHIR façade compare bases so)."""
    return base.rstrip("/").casefold()


def local_reference(literal: str, bases: Collection[str] | None) -> tuple[str, str] | None:
    """``(type, id)`` of a literal reference to one of the source's own resources: relative, or
    absolute at one of ``bases`` (the source's; ``None``: any base), else None.

    ``https://other.example/fhir/Patient/1`` is another server's ``Patient/1``: read as the local
    one, another person's data counts as a local patient's."""
    parsed = parse_reference(literal)
    if parsed is None or bases is None or "://" not in literal:
        return parsed
    base = reference_base(literal)
    return parsed if base is None or base_key(base) in {base_key(b) for b in bases} else None


def full_url_bases(entries: Iterable[Mapping[str, Any]]) -> set[str]:
    """The bases a Bundle's entries' fullUrls name: where the server says its resources are (a
    server behind a proxy writes its inner address there, and in the references it makes absolute)."""
    return {b for e in entries if isinstance(u := e.get("fullUrl"), str) and (b := reference_base(u)) is not None}


#: Why a resource :func:`foreign_reference` finds is not read, before the other server's base.
ELSEWHERE = "it names a patient or a case's resource on another server, not this one's: "

#: Types a reference to another server may name and still be read: a directory's entries (its
#: Practitioner, Organization, HealthcareService…), which place nothing and are no one's record; a
#: RelatedPerson is a patient's, and is not among them.
_ELSEWHERE_READ = frozenset(
    {"Practitioner", "PractitionerRole", "Organization", "Location", "HealthcareService", "Endpoint", "Device"}
)


def foreign_reference(resource: Mapping[str, Any], bases: Collection[str]) -> str | None:
    """The base of the first reference in ``resource`` to a Patient or a case's resource on a server
    at none of ``bases`` (an absolute URL elsewhere), else None.

    ``https://other.example/fhir/Patient/1`` is not this server's ``Patient/1``: read as such, it put
    another person's data in a local patient's case. A reference is local when relative, or
    absolute at a base of the source (the server pulled from; in an import, the base of the Bundle's
    fullUrls)."""
    own = {b.rstrip("/").casefold() for b in bases}
    for literal in iter_references(resource):
        base = reference_base(literal)
        if base is None or base.casefold() in own:
            continue
        parsed = parse_reference(literal)
        if parsed is not None and parsed[0] not in _ELSEWHERE_READ:
            return base
    return None


def iter_references(obj: Any) -> Iterator[str]:
    """Every literal ``reference`` string anywhere inside a resource (or part of one), in document
    order.

    Every resource a pull takes in is walked here more than once, so the walk keeps one stack rather
    than a generator per element, and tells containers by exact type before asking the slower
    ``isinstance`` of what is neither text nor a number.
    """
    stack = [obj]
    while stack:
        item = stack.pop()
        if type(item) is dict or (type(item) is not list and isinstance(item, Mapping)):
            literal = item.get("reference")
            if isinstance(literal, str):
                yield literal
            members = [v for v in item.values() if _is_container(v)]
        elif isinstance(item, list):
            members = [v for v in item if _is_container(v)]
        else:
            continue
        members.reverse()
        stack.extend(members)


def _is_container(value: Any) -> bool:
    kind = type(value)
    if kind is dict or kind is list:
        return True
    if kind is str or kind is int or kind is bool or kind is float or value is None:
        return False
    return isinstance(value, Mapping | list)


def replace_references(obj: Any, new: Callable[[dict[str, Any]], str | None]) -> Any:
    """``obj`` (JSON as parsed or built: dicts and lists) with each Reference ``new`` gives a new
    ``reference`` for changed, in a copy of what holds it; the rest is shared, and ``obj`` itself is
    never changed (an update shares with its base what it does not change). ``obj`` itself when
    nothing changes."""
    if type(obj) is dict:  # exact types: cheaper than isinstance, per element
        out: dict[str, Any] | None = None
        if type(obj.get("reference")) is str:
            literal = new(obj)
            if literal is not None and literal != obj["reference"]:
                out = dict(obj)
                out["reference"] = literal
        return _within(obj, obj.items(), out, dict, new)
    if type(obj) is list:
        return _within(obj, enumerate(obj), None, list, new)
    return obj


def _within(obj: Any, members: Iterable[tuple[Any, Any]], out: Any, copy: Callable[[Any], Any], new: Any) -> Any:
    """``replace_references`` of a container's members (``(name or index, value)``): ``out``, the
    container's copy if one is made already, else one made at the first member that changes."""
    for at, value in members:
        if type(value) is dict or type(value) is list:
            changed = replace_references(value, new)
            if changed is not value:
                out = copy(obj) if out is None else out
                out[at] = changed
    return obj if out is None else out


def patient_of(resource: Mapping[str, Any], *, bases: Collection[str] | None = None) -> str | None:
    """The id of the Patient a resource is about (``patient``, ``subject`` or ``for``), if any;
    given ``bases`` (the source's), not one an absolute URL at another base names (another
    server's ``Patient/1`` is not this one's)."""
    for name in PATIENT_PATHS:
        ref = resource.get(name)
        literal = ref.get("reference") if isinstance(ref, Mapping) else None
        parsed = local_reference(literal, bases) if isinstance(literal, str) else None
        if parsed is not None and parsed[0] == "Patient":
            return parsed[1]
    return None


def party_reference(party: Party, moved: Mapping[str, str] | None = None) -> dict[str, Any]:
    """A Reference to a party, with its name as ``display`` when known; ``moved`` maps a party's
    ``Type/id`` as the case spells it to the one a server gave it (see :class:`References`). An
    outside party is named at its own server (``https://other.example/fhir/Practitioner/7``), and is
    never moved: the server written to neither holds nor renumbers another server's records."""
    literal = f"{_PARTY_TYPES[party.kind]}/{party.id}"
    if party.server is not None:
        literal = f"{party.server}/{literal}"
    elif moved:
        literal = moved.get(literal, literal)
    out: dict[str, Any] = {"reference": literal}
    if party.name:
        out["display"] = party.name
    return out


def read_party(
    reference: Mapping[str, Any] | None,
    kinds: Iterable[PartyKind] | None = None,
    moved_back: Mapping[str, str] | None = None,
    *,
    bases: Collection[str] | None = None,
) -> Party | None:
    """The party a Reference names, or None when it names none we can hold (e.g. a PractitionerRole).
    ``moved_back`` maps a ``Type/id`` a server gave a party back to the one the case spells.

    ``bases``: those the resource came from (see :func:`local_reference`; ``None``: any base). An
    absolute URL at another base names an outside party (``Party.server``), not the local record of
    the same id: ``https://other.example/fhir/Practitioner/7`` read as ``Practitioner/7`` put the
    local practitioner 7 on the care team in the other server's one's place."""
    if not isinstance(reference, dict):
        return None
    literal = reference.get("reference")
    if not isinstance(literal, str):
        return None
    server = None if local_reference(literal, bases) is not None else reference_base(literal)
    if moved_back and server is None:
        literal = moved_back.get(literal, literal)
    parsed = parse_reference(literal)
    if parsed is None or parsed[0] not in _PARTY_KINDS:
        return None
    kind = _PARTY_KINDS[parsed[0]]
    if kinds is not None and kind not in kinds:
        return None
    name = reference.get("display")
    return Party(kind=kind, id=parsed[1], name=name[:500] if isinstance(name, str) and name else None, server=server)


_NAMESPACE = uuid.NAMESPACE_URL.bytes


def _uuid5(name: str) -> str:
    """``str(uuid.uuid5(uuid.NAMESPACE_URL, name))``, without building UUID objects (it is on the hot path)."""
    digest = bytearray(hashlib.sha1(_NAMESPACE + name.encode()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


class References:
    """Keys ↔ references for one case: writes ``Type/id`` when the server id is known, else ``urn:uuid:``."""

    def __init__(
        self,
        identifier_system: str,
        server_ids: Mapping[ResourceKey, str] | None = None,
        *,
        parties: Mapping[str, str] | None = None,
        bases: Collection[str] | None = None,
    ) -> None:
        self.identifier_system = identifier_system
        #: The bases the resources read came from (``None``: not known, any base is theirs): an
        #: absolute reference at another base names another server's resource, which no key is.
        self.bases = None if bases is None else frozenset(bases)
        #: Parties a server calls by another id than the case: ``Type/id`` as the case spells it →
        #: ``Type/id`` on the server (a patient created by a conditional create). References to
        #: them are written, and read back, as the server spells them.
        self.parties: dict[str, str] = dict(parties or {})
        self._parties_back = {server: own for own, server in self.parties.items()}
        self._server_ids: dict[ResourceKey, str] = {}
        self._by_literal: dict[str, ResourceKey] = {}
        self._urns: dict[ResourceKey, str] = {}
        self._by_urn: dict[str, ResourceKey] = {}
        #: Keys taught whose ``urn:uuid:`` is not worked out yet (see :meth:`know_all`).
        self._pending: list[ResourceKey] = []
        #: The References written to each key, shared for comparing only (see :meth:`shown`).
        self._shown: dict[tuple[str, str], dict[str, str]] = {}
        for key, server_id in (server_ids or {}).items():
            self.know(key, server_id=server_id)

    def know(self, key: ResourceKey, *, server_id: str | None = None, full_url: str | None = None) -> None:
        """Teach a key, and optionally the server id or Bundle fullUrl it goes by."""
        self._pending.append(key)
        if server_id:
            self._server_ids[key] = server_id
            self._by_literal[f"{key.type}/{server_id}"] = key
            self._shown.pop((key.type, key.value), None)
        if full_url:
            parsed = parse_reference(full_url)
            if parsed is not None:
                self._by_literal.setdefault(f"{parsed[0]}/{parsed[1]}", key)
            else:
                self._by_urn.setdefault(full_url, key)

    def know_all(self, keys: Iterable[ResourceKey]) -> None:
        """Teach keys. The ``urn:uuid:`` of a key taught (a SHA-1 each) is worked out when first
        needed: when written, or all at once before a ``urn:uuid:`` reference is first resolved.
        An update whose references are ``Type/id`` never needs them."""
        self._pending.extend(keys)

    def full_url(self, key: ResourceKey) -> str:
        """``urn:uuid:`` of a uuid5 of the business identifier: the same on every run and machine."""
        urn = self._urns.get(key)
        if urn is None:
            urn = "urn:uuid:" + _uuid5(f"{key.type}?identifier={self.identifier_system}|{key.value}")
            self._urns[key] = urn
            self._by_urn[urn] = key
        return urn

    def party(self, party: Party) -> dict[str, Any]:
        """:func:`party_reference` as the server spells it (see ``parties``)."""
        return party_reference(party, self.parties)

    def read_party(self, reference: Mapping[str, Any] | None, kinds: Iterable[PartyKind] | None = None) -> Party | None:
        """:func:`read_party` at the bases read from, a party the server calls by another id read as the
        case spells it."""
        return read_party(reference, kinds, self._parties_back, bases=self.bases)

    def server_id(self, key: ResourceKey) -> str | None:
        return self._server_ids.get(key)

    def reference(self, key: ResourceKey) -> dict[str, str]:
        """A Reference to one of the case's own resources."""
        server_id = self._server_ids.get(key)
        return {"reference": f"{key.type}/{server_id}" if server_id else self.full_url(key)}

    def shown(self, rtype: str, value: str) -> dict[str, str]:
        """:meth:`reference` to ``ResourceKey(rtype, value)``, for comparing only: one shared object
        per key, never put into a resource."""
        shown = self._shown.get((rtype, value))
        if shown is None:
            shown = self._shown[(rtype, value)] = self.reference(ResourceKey(rtype, value))
        return shown

    def resolve(self, reference: Mapping[str, Any] | None) -> ResourceKey | None:
        """The key a Reference points at, if it is one of the resources this object knows."""
        if not isinstance(reference, dict):
            return None
        literal = reference.get("reference")
        if not isinstance(literal, str):
            return None
        if self._pending and literal.startswith("urn:uuid:"):
            pending, self._pending = self._pending, []
            for k in pending:
                self.full_url(k)
        key = self._by_urn.get(literal)
        if key is not None:
            return key
        parsed = local_reference(literal, self.bases)
        return self._by_literal.get(f"{parsed[0]}/{parsed[1]}") if parsed else None
