"""The resources the facade serves, mapped once per case revision and indexed for search.

Mapping a case costs milliseconds; mapping every case on every request would make a search cost
seconds. So the facade keeps, per FHIR version, each case's resources as served (JSON bytes) with
the search values read out of them, and a *stamp* of what they were made from: the case's revision
and the newest time and number of its stored resources. Every request first reads the store's version
counters (:func:`~fhir_cm.store.store_version`, one statement outside any transaction); only when they
moved does it read all stamps in one snapshot (no case JSON is decoded), map again the cases whose
stamp moved and drop the cases that are gone. It then answers from memory. Reads therefore always see
the store as it is (another process may have changed it), while a store that did not change costs one
small query — one round trip on PostgreSQL, where a transaction around it would cost three.

What a resource looks like here:

* it is what :func:`fhir_cm.mapping.case_to_resources` makes of the case, started from the stored
  copy when there is one (a resource imported or pulled and not changed since comes out as it was
  stored, converted to the version asked for when it was stored in the other);
* its ``id`` is its key in the store: the business-identifier value in our identifier system, or
  the server id for a resource that carries none of ours (a key that is not a valid FHIR id is
  replaced by a stable hash); references between a case's resources use these ids, so they
  resolve against the facade;
* ``meta.versionId`` is a hash of its content (it changes exactly when the content does) and
  ``meta.lastUpdated`` is when its case, or its stored copy, last changed — conservative: an
  incremental reader may see a resource again when only a sibling changed, never miss a change.

Memory grows with the number of resources (their JSON plus a few tuples each). The index lives in
the process; several API processes each keep their own, all reading the same store. At start-up
(:meth:`FacadeIndex.warm`) a case the store kept a copy of, made by this code with these settings
from the case as it still is (``store.facade_copies``, ``_copies``), is read from it instead of mapped:
a restart maps only the cases changed since the last one.
"""

from __future__ import annotations

import bisect
import hashlib
import logging
import operator
import re
import threading
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from fhir_cm.mapping import ResourceKey, case_plan, case_to_resources, convert_resource
from fhir_cm.store import (
    CaseCache,
    CaseRecord,
    CaseStamp,
    FacadeCopy,
    Store,
    StoredResource,
    StoreError,
    UnreadableCase,
    case_stamps,
    case_stamps_since,
    changes_seen,
    read_since,
    facade_copies,
    get_case_records,
    get_resources,
    keep_facade_copies,
    store_version,
)

from ._copies import decode_copy, encode_copy, made_with
from ._indexed import Indexed, indexed
from ._match import base_key
from ._negotiation import FhirVersion
from ._params import RESOURCE_TYPES, Criterion, SearchRequest, params_for

__all__ = ["FacadeIndex", "Indexed", "facade_id"]

log = logging.getLogger(__name__)

#: Cases read per query when the view catches up (every case, at start-up).
_READ_AT_ONCE = 200
#: Cases changed since the last look up to which the view's orders are kept in step, resource by
#: resource. Past it they are dropped and rebuilt on next use, one parameter at a time. On 10,000 cases,
#: with each resource kept in its place (``_View._replaced``), 80 changed cases caught up in 191–195 ms
#: kept in step against 289–303 ms rebuilt (the order and two value maps; each further parameter a
#: client searches by is rebuilt too), and 320 alike either way.
_KEPT_IN_ORDER_UP_TO = 100
_FHIR_ID = re.compile(r"^(?!\.{1,2}$)[A-Za-z0-9\-.]{1,64}$")  # not '.' nor '..': no URL path carries them


def facade_id(key: ResourceKey) -> str:
    """The id a resource has in the facade: its key's value, or a stable hash when that is no FHIR id."""
    if _FHIR_ID.match(key.value):
        return key.value
    return "h-" + hashlib.sha256(f"{key.type}/{key.value}".encode()).hexdigest()[:40]


_Stamp = CaseStamp


#: A resource's id, the key its orders are sorted by (in C: a bisect in a list of ten thousand calls it
#: some fourteen times, and a change of a case takes a few hundred of them).
_by_id: Callable[[Indexed], str] = operator.attrgetter("id")


def _keys(r: Indexed, param: str) -> set[str]:
    return {v[1] for v in r.values.get(param, ())}


def _remove(order: list[Indexed], r: Indexed) -> None:
    """Take ``r`` out of a list by id, where it is."""
    i = bisect.bisect_left(order, r.id, key=_by_id)
    if i < len(order) and order[i] is r:
        del order[i]


def _unkeyed(keyed: dict[str, list[Indexed]], k: str, r: Indexed) -> None:
    """``r`` out of the list of value ``k``, and the value out of the map once no resource holds it."""
    holding = keyed.get(k)
    if holding is not None:
        _remove(holding, r)
        if not holding:
            del keyed[k]


def _swap(order: list[Indexed], before: Indexed, r: Indexed) -> None:
    """``r`` in place of ``before``, of the same id, in a list by id."""
    i = bisect.bisect_left(order, before.id, key=_by_id)
    if i < len(order) and order[i] is before:
        order[i] = r
    else:  # not where it should be: the list is made right as the slow path would
        _remove(order, before)
        bisect.insort(order, r, key=_by_id)


def _read_stamps(session: Session, view: _View) -> tuple[dict[str, CaseStamp], int]:
    """The stamps of the cases that may have changed since the view last read them, and where the order
    of commits stood before they were read (no JSON decoded). The first time, every case's; then only
    those saved since (``case_stamps_since``): reading every stamp again after each write took about
    50 ms on 10,000 cases, of each request that caught up."""
    seen = changes_seen(session)
    since = read_since(view.seen, seen)
    if since is None:
        stamps = case_stamps(session)
        for gone in view.stamps.keys() - stamps.keys():
            view.drop(gone)
        return stamps, seen
    return case_stamps_since(session, since), seen


@dataclass
class _View:
    """The index of one FHIR version.

    The resources of each type by id (``in_order``) and, per token and reference parameter, by value
    (``having``) are built on first use, then kept in step as cases change, one resource at a time.
    Rebuilt after every change, as they were, the first search after a case was saved passed over every
    resource of the type (on 10,000 cases: 85 ms at the median, up to 0.7 s, against 43 and 46 ms kept
    in step; most of what is left is reading the stamps). Many cases changed at once, a rebuild costs
    less, and they are dropped instead (``forget_order``)."""

    stamps: dict[str, _Stamp] = field(default_factory=dict)
    case_keys: dict[str, list[tuple[str, str]]] = field(default_factory=dict)
    by_type: dict[str, dict[str, Indexed]] = field(default_factory=lambda: {t: {} for t in RESOURCE_TYPES})
    failed: set[str] = field(default_factory=set)
    _sorted: dict[str, list[Indexed]] = field(default_factory=dict)
    #: type → parameter → value key → the resources holding it, by id; built on first use per parameter.
    _keyed: dict[str, dict[str, dict[str, list[Indexed]]]] = field(default_factory=dict)
    #: ``store_version`` when the stamps were last read: unchanged, the view is current.
    version: tuple[Any, ...] | None = None
    #: ``changes_seen`` when the stamps were last read (None: never read in full).
    seen: int | None = None

    def drop(self, case_id: str) -> None:
        for rtype, rid in self.case_keys.pop(case_id, ()):
            held = self.by_type[rtype].get(rid)
            if held is not None and held.case_id == case_id:
                del self.by_type[rtype][rid]
                self._unlisted(held)
        self.stamps.pop(case_id, None)
        self.failed.discard(case_id)

    def put(self, case_id: str, stamp: _Stamp, resources: list[Indexed] | None) -> None:
        """Serve ``resources`` as the case's (None: a case that could not be mapped, none served).

        A resource the case served already takes its place where it stands in the orders, and moves only
        in the value lists its values left or joined: a case saved again is mostly the same resources
        (a plan summary changes one), and taking each out of every order and putting it back moved a
        list the size of the type's resources twice per value — on 10,000 cases, most of a change's
        catch-up."""
        held = {key: self.by_type[key[0]].get(key[1]) for key in self.case_keys.pop(case_id, ())}
        self.failed.discard(case_id)
        self.stamps[case_id] = stamp
        if resources is None:
            resources = []
            self.failed.add(case_id)
        else:
            self.case_keys[case_id] = [(r.type, r.id) for r in resources]
        for r in resources:
            before = held.pop((r.type, r.id), None) or self.by_type[r.type].get(r.id)
            self.by_type[r.type][r.id] = r
            if before is not None and before.case_id == case_id:
                self._replaced(before, r)
                continue
            if before is not None:  # another case's resource of that id: served no more
                self._unlisted(before)
            self._listed(r)
        for (rtype, rid), gone in held.items():  # the case's resources it serves no more
            if gone is not None and gone.case_id == case_id and self.by_type[rtype].get(rid) is gone:
                del self.by_type[rtype][rid]
                self._unlisted(gone)

    def forget_order(self) -> None:
        """Drop the orders by id and by value: many cases are about to change."""
        self._sorted.clear()
        self._keyed.clear()

    def _listed(self, r: Indexed) -> None:
        order = self._sorted.get(r.type)
        if order is not None:
            bisect.insort(order, r, key=_by_id)
        for param, keyed in self._keyed.get(r.type, {}).items():
            for k in _keys(r, param):
                bisect.insort(keyed.setdefault(k, []), r, key=_by_id)

    def _replaced(self, before: Indexed, r: Indexed) -> None:
        """``r`` where ``before`` (the same type and id) stood, in the order by id and in the value lists
        both hold a value of; out of those only ``before`` was in, into those only ``r`` is."""
        order = self._sorted.get(r.type)
        if order is not None:
            _swap(order, before, r)
        for param, keyed in self._keyed.get(r.type, {}).items():
            was, now = _keys(before, param), _keys(r, param)
            for k in was - now:
                _unkeyed(keyed, k, before)
            for k in was & now:
                _swap(keyed.setdefault(k, []), before, r)
            for k in now - was:
                bisect.insort(keyed.setdefault(k, []), r, key=_by_id)

    def _unlisted(self, r: Indexed) -> None:
        order = self._sorted.get(r.type)
        if order is not None:
            _remove(order, r)
        for param, keyed in self._keyed.get(r.type, {}).items():
            for k in _keys(r, param):
                _unkeyed(keyed, k, r)

    def in_order(self, rtype: str) -> list[Indexed]:
        """The resources of a type by id: the order of search results, stable from page to page."""
        if rtype not in self._sorted:
            held = self.by_type[rtype]
            self._sorted[rtype] = [held[i] for i in sorted(held)]
        return self._sorted[rtype]

    def having(self, rtype: str, param: str, key: str) -> list[Indexed]:
        """The resources of a type holding a ``param`` value whose second part is ``key``, by id."""
        maps = self._keyed.setdefault(rtype, {})
        keyed = maps.get(param)
        if keyed is None:
            keyed = {}
            for r in self.in_order(rtype):
                held = r.values.get(param)
                if not held:  # most resources hold no value of most parameters
                    continue
                if len(held) == 1:
                    keyed.setdefault(held[0][1], []).append(r)
                    continue
                for k in {v[1] for v in held}:
                    keyed.setdefault(k, []).append(r)
            maps[param] = keyed
        return keyed.get(key, [])

    def candidates(self, rtype: str, criteria: Sequence[Criterion]) -> list[Indexed]:
        """The fewest resources that may match: those holding a key of the most selective criterion
        whose every alternative names one (token codes, reference ids); else every resource of the type."""
        best: list[Indexed] | None = None
        for criterion in criteria:
            keys = [m.key for m in criterion.alternatives]
            if criterion.param.kind not in ("token", "reference") or any(k is None for k in keys):
                continue
            lists = [self.having(rtype, criterion.param.name, k) for k in keys if k is not None]
            found = (
                lists[0] if len(lists) == 1 else sorted({r.id: r for lst in lists for r in lst}.values(), key=_by_id)
            )
            if best is None or len(found) < len(best):
                best = found
        return self.in_order(rtype) if best is None else best


class FacadeIndex:
    """The served resources of every case in the store, per FHIR version, kept in step with the store.

    ``bases`` are the service bases, besides the URL a request reaches the façade at, that are the
    façade's own: its public URL's ``/fhir`` and the FHIR server it syncs with. An absolute reference
    there names a local resource — in a search value, and in a served resource, as in one a copy
    pulled from that server holds (the pull reads them so, and the mapping keeps their spelling);
    a copy's references at the base it was pulled from are local too.
    """

    def __init__(self, identifier_system: str, *, bases: Iterable[str] = ()) -> None:
        self.identifier_system = identifier_system
        #: :func:`base_key` of each of ``bases``.
        self.bases: frozenset[str] = frozenset(base_key(b) for b in bases)
        self._views: dict[FhirVersion, _View] = {}
        self._lock = threading.Lock()

    def read(self, store: Store, version: FhirVersion, resource_type: str, rid: str) -> Indexed | None:
        """One resource by type and id, as the store is now; None when there is none."""
        seen = _version_of(store)
        with self._lock:
            view = self._refreshed(store, version, seen)
            return view.by_type.get(resource_type, {}).get(rid)

    def search(
        self, store: Store, version: FhirVersion, resource_type: str, criteria: Sequence[Criterion]
    ) -> tuple[list[Indexed], int]:
        """The resources of a type that match every criterion, by id; and how many cases could not be mapped."""
        seen = _version_of(store)
        with self._lock:
            view = self._refreshed(store, version, seen)
            found = [r for r in view.candidates(resource_type, criteria) if r.matches(criteria)]
            return found, len(view.failed)

    def related(self, version: FhirVersion, page: Sequence[Indexed], request: SearchRequest) -> list[Indexed]:
        """``_include`` and ``_revinclude``: what the page's resources refer to by the parameters asked,
        and what refers to them; each once, none of the page's own.

        Read from the index as the search that found ``page`` left it, or as a later request brought it
        up to date since (then what the page refers to may have changed meanwhile, as between two reads):
        the store is not asked again."""
        if not page or not (request.includes or request.revincludes):
            return []
        with self._lock:
            view = self._views.setdefault(version, _View())
            seen = {(r.type, r.id) for r in page}
            out: list[Indexed] = []

            def add(found: Indexed | None) -> None:
                if found is not None and (found.type, found.id) not in seen:
                    seen.add((found.type, found.id))
                    out.append(found)

            for param in request.includes:
                for r in page:
                    for rtype, rid, elsewhere in r.values.get(param.name, ()):
                        if elsewhere is None and param.target in (None, rtype):  # not another server's
                            add(view.by_type.get(rtype, {}).get(rid))
            targets = {(r.type, r.id) for r in page}
            for source, param in request.revincludes:
                holding = {c.id: c for _, rid in targets for c in view.having(source, param.name, rid)}
                for candidate in sorted(holding.values(), key=_by_id):
                    if any(v[2] is None and v[:2] in targets for v in candidate.values.get(param.name, ())):
                        add(candidate)
            return out

    # --- keeping in step -------------------------------------------------------------------------

    def warm(self, store: Store, version: FhirVersion, *, stop: threading.Event | None = None) -> None:
        """Index every case now (at start-up), and build the value maps of every token and reference
        parameter, so the first request — a read or a search — does not wait for either. ``stop``
        set, it stops after the case under way (the server is shutting down); the next look goes on.

        A case whose copy the store kept from an earlier start (``store.facade_copies``) is read
        from it; the others are mapped and their copies kept for the next start. Only here: a request
        that maps a changed case writes nothing (no write on the read path), and the next start maps
        that case again, once."""
        seen = _version_of(store)
        with self._lock:
            view = self._refreshed(store, version, seen, stop, keep=True)
            if stop is not None and stop.is_set():
                return
            for rtype in RESOURCE_TYPES:
                for param in params_for(rtype).values():
                    if param.kind in ("token", "reference"):
                        view.having(rtype, param.name, "")

    def _refreshed(
        self,
        store: Store,
        version: FhirVersion,
        seen: tuple[int, int],
        stop: threading.Event | None = None,
        *,
        keep: bool = False,
    ) -> _View:
        """The view, brought up to date with the store. ``seen`` is the store's version, read before the
        lock was taken: unchanged since the last look, every stamp is as it was and the view is served
        as it stands. Otherwise the stamps are read again, in a snapshot (which also catches a change
        saved after ``seen``). ``keep``: use and keep the store's copies (:meth:`warm`)."""
        view = self._views.setdefault(version, _View())
        if view.version == seen:
            return view
        with store.session(read_only=True) as session:  # the stamps and the cases they stamp, as of one moment
            return self._caught_up(session, view, version, stop, store.cases, store if keep else None)

    def _caught_up(
        self,
        session: Session,
        view: _View,
        version: FhirVersion,
        stop: threading.Event | None,
        cache: CaseCache,
        keep_in: Store | None = None,
    ) -> _View:
        """The view with every case whose stamp moved indexed again. The cases are read a few hundred at a
        time through the store's case cache (the start-up decodes them there first: decoded once, not
        once for the cache and once here; those it lacks are kept there while it has room). With
        ``keep_in``, a case's kept copy stands in for mapping it, and what is mapped is kept there."""
        current = store_version(session)
        if view.version == current:  # another look caught up between the two
            return view
        stamps, seen = _read_stamps(session, view)
        stale = [case_id for case_id, stamp in stamps.items() if view.stamps.get(case_id) != stamp]
        if len(stale) > _KEPT_IN_ORDER_UP_TO:
            view.forget_order()
        fingerprint = made_with(version, self.identifier_system, self.bases) if keep_in is not None else ""
        for n in range(0, len(stale), _READ_AT_ONCE):
            chunk = stale[n : n + _READ_AT_ONCE]
            unread: set[str] = set()  # kept copies that could not be read: replaced
            kept = self._kept(session, version, fingerprint, {c: stamps[c] for c in chunk}, unread) if keep_in else {}
            unreadable: list[UnreadableCase] = []  # stored before a rule of the case model (logged by id)
            to_map = [case_id for case_id in chunk if case_id not in kept]
            revisions = {case_id: stamps[case_id].revision for case_id in to_map}
            records = (
                get_case_records(session, to_map, skipped=unreadable, cache=cache, revisions=revisions)
                if to_map
                else {}
            )
            left_out = {bad.case_id for bad in unreadable}
            made: dict[str, FacadeCopy] = {}
            for case_id in chunk:
                if stop is not None and stop.is_set():
                    return view  # its version left as it was: the next look maps the cases still to do
                stamp = stamps[case_id]
                record = records.get(case_id)
                served: list[Indexed] | None
                if case_id in kept:
                    served = kept[case_id]
                elif case_id in left_out:
                    served = None
                elif record is None:  # deleted since the stamps were read; the next look drops it
                    served = []
                else:
                    served = self._served(session, record, version, has_copies=stamp.resources > 0)
                    if served is not None and keep_in is not None:
                        made[case_id] = FacadeCopy(stamp, encode_copy(served))
                view.put(case_id, stamp, served)
            if made and keep_in is not None:
                _keep(keep_in, version, fingerprint, {c: made[c] for c in made.keys() - unread})
                _keep(keep_in, version, fingerprint, {c: made[c] for c in made.keys() & unread}, rewrite=True)
        view.version, view.seen = current, seen
        return view

    def _kept(
        self,
        session: Session,
        version: FhirVersion,
        fingerprint: str,
        stamps: dict[str, CaseStamp],
        unread: set[str],
    ) -> dict[str, list[Indexed]]:
        """The cases of ``stamps`` whose copy the store kept, still current, decoded. A copy that cannot be
        decoded is left out, its case added to ``unread`` (mapped again, and its copy replaced)."""
        out = {}
        for case_id, payload in facade_copies(session, version, fingerprint, stamps).items():
            try:
                out[case_id] = decode_copy(payload, case_id)
            except (ValueError, KeyError, TypeError, zlib.error):
                unread.add(case_id)
                log.warning("FHIR facade: a kept copy of a case could not be read; the case is mapped again")
        return out

    def _served(
        self, session: Session, record: CaseRecord, version: FhirVersion, *, has_copies: bool = True
    ) -> list[Indexed] | None:
        """The case's resources as served, or None (logged, without data) when the case cannot be mapped.

        Store errors propagate (the request fails and the next one tries again); anything else is a
        case the mapping cannot serve — that stays so until the case changes, as mapping is deterministic.
        """
        case_id = record.case.id
        try:
            copies = get_resources(session, case_id) if has_copies else []
            stored = {ResourceKey(r.resource_type, r.key): r for r in copies}
            base = {key: _in_version(r, version) for key, r in stored.items()}
            keys = [key for key, _, _ in case_plan(record.case, base)]
            ids = {key: facade_id(key) for key in keys}
            # The copies' references are read as the pull or import that stored them read them: an absolute
            # URL is local only at a copy's source, and elsewhere names another server's record.
            read_at = {c.source for c in copies if c.source}
            mapped = case_to_resources(
                record.case, version, self.identifier_system, base, server_ids=ids, bases=read_at
            )
            out = []
            for key, resource in mapped.items():
                if key.type in RESOURCE_TYPES:
                    copy = stored.get(key)
                    changed = record.updated_at if copy is None else max(record.updated_at, copy.updated_at)
                    own = self.bases if copy is None or not copy.source else self.bases | {base_key(copy.source)}
                    out.append(indexed(key, ids[key], case_id, resource, changed, own))
            return out
        except StoreError:
            raise
        except Exception as exc:  # one broken case must not take the facade down with it
            log.warning(
                "FHIR facade: a case could not be mapped to FHIR %s and is left out (%s)", version, type(exc).__name__
            )
            return None


def _keep(
    store: Store, version: FhirVersion, fingerprint: str, copies: dict[str, FacadeCopy], *, rewrite: bool = False
) -> None:
    """Keep the copies for the next start, in a transaction of their own. A failure costs that start
    time, nothing else: it is logged (without data) and the start-up goes on."""
    if not copies:
        return
    try:
        with store.session() as session:
            keep_facade_copies(session, version, fingerprint, copies, rewrite=rewrite)
    except (StoreError, SQLAlchemyError) as exc:
        log.warning(
            "FHIR facade: copies of %d cases could not be kept for the next start (%s)", len(copies), type(exc).__name__
        )


def _version_of(store: Store) -> tuple[int, int]:
    """The store's version, as one small query outside any transaction. Read before a request takes the
    index's lock, so that the façade's requests do not wait in turn on each other's round trip."""
    with store.lookup() as session:
        return store_version(session)


def _in_version(stored: StoredResource, version: FhirVersion) -> dict[str, Any]:
    if stored.fhir_version == version:
        return stored.raw
    return convert_resource(stored.raw, stored.fhir_version, version)
