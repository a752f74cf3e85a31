"""``fhir-cm import``: FHIR resources, Bundles and case JSON from files → cases in the store.

Every file is read and checked before anything is written, so a bad file stops the import with
nothing of it taken in. Then each file is written in its own transaction: its resources, raw and
with their FHIR version, against the case each belongs to (``_placement.py``), and every case they
touch, read again from all its stored resources (``_view.py``).

An import updates a case that already exists by a three-way merge: what the file's resources say
differently from what the stored resources said before replaces the case's value (per entity, by
id; per case field otherwise); what they do not change keeps any change made in the store since. A
case document (the domain's JSON) is merged the same way against the document imported last for its
case (the store keeps it); the first document for a case that exists already replaces every field
and entity it holds and keeps the case's other entities. Re-importing a file therefore changes
nothing, and a case edited through the API or by a pull keeps its edits when its document, or an
unrelated resource of it, is re-imported. Where the changes made in the store no longer fit with
what a file says (a referral added for a stay the file then removes), the file's case replaces them,
and the report names the case (``replaced``). A synthesised episode's fields (``_view.py``) never
override a case's own fields, only earlier synthesised ones. Saved cases are queued for pushing like
any other change.
"""

from __future__ import annotations

import datetime as dt
import functools
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session

from ..config import Settings
from ..domain import Case
from ..mapping import (
    FhirVersion,
    ResourceKey,
    dates_as_written,
    explicit_fhir_version,
    fhir_version_without_server,
)
from ..store import (
    Store,
    StoredResource,
    content_hash,
    copies_by_key,
    find_by_identifier,
    get_case,
    get_case_document,
    get_case_record,
    get_resources,
    put_case_document,
    put_resources,
    save_case,
)
from ._logical import Known
from ._files import FhirItem, ParsedFile, decide_versions, key_of, parse_file, resolve_bundle_references
from ._placement import place, refuse_clashes
from ._view import CaseView, read_view

__all__ = ["ImportReport", "import_files"]

_LISTS = ("needs", "goals", "referrals", "team", "contacts", "stays")


class ImportReport(BaseModel):
    """What an import did."""

    files: int = 0
    resources: int = 0
    #: Resources per FHIR version.
    versions: dict[str, int] = {}
    #: Cases given as domain JSON (``fhir-cm generate``).
    case_documents: int = 0
    cases_created: int = 0
    cases_updated: int = 0
    cases_unchanged: int = 0
    #: Resources stored but not read into the domain (unreadable, or clashing with another's id).
    raw_only: int = 0
    case_ids: list[str] = []
    #: Cases whose changes made in the store no longer fit with what a file says: the file's case
    #: replaced them, those changes with it.
    replaced: list[str] = []

    def line(self) -> str:
        """The one-line summary for stderr."""
        by_version = ", ".join(f"{v} {n}" for v, n in sorted(self.versions.items()))
        parts = [
            f"{self.files} file{'s' * (self.files != 1)}",
            f"{self.resources} resources" + (f" ({by_version})" if by_version else ""),
        ]
        if self.case_documents:
            parts.append(f"{self.case_documents} case documents")
        line = (
            f"imported {', '.join(parts)}: {self.cases_created} cases created, {self.cases_updated} updated, "
            f"{self.cases_unchanged} unchanged; {self.raw_only} resources kept raw-only"
        )
        if self.replaced:
            line += f"; changes made in the store replaced by the files' in {', '.join(self.replaced)}"
        return line


def _merge(current: Case | None, old: Case | None, new: Case, *, made_up: bool = False) -> Case | None:
    """The three-way merge of the module docstring: ``current`` + (``new`` − ``old``).

    ``made_up``: ``new``'s own fields were synthesised (``_view.py``), so they fill no field of
    ``current`` but its plan summary. None when the changes made in the store no longer fit with what
    the source says (the caller then takes the source's case, and says so).
    """
    if current is None:
        return new
    merged: dict[str, Any] = current.model_dump(mode="json")
    before = old.model_dump(mode="json") if old is not None else None
    after = new.model_dump(mode="json")
    for name, value in after.items():
        if name in _LISTS or (made_up and name != "plan_summary"):
            continue
        if before is None or before.get(name) != value:
            merged[name] = value
    for name in _LISTS:
        was = {e["id"]: e for e in (before or {}).get(name, [])}
        now = {e["id"]: e for e in after[name]}
        held = {e["id"]: e for e in merged[name]}
        for eid, entity in now.items():
            if was.get(eid) != entity:
                held[eid] = entity
        for eid in was.keys() - now.keys():
            held.pop(eid, None)
        merged[name] = list(held.values())
    try:
        return Case.model_validate(merged)
    except ValidationError:
        return None


class _Run:
    def __init__(self, settings: Settings, default: FhirVersion) -> None:
        self.settings, self.default = settings, default
        self.report = _Counts()
        self.memo: dict[str, tuple[frozenset[tuple[str, str, str, str]], CaseView]] = {}

    def write(self, session: Session, parsed: ParsedFile, items: list[tuple[FhirItem, ResourceKey, str]]) -> list[str]:
        """One file's resources and cases, in the caller's transaction (the case row first: resources
        refer to it); returns the ids of the cases it wrote."""
        written = [document.case.id for document in parsed.cases]
        for document in parsed.cases:
            case_id = document.case.id
            record = get_case_record(session, case_id)
            self.report.seen(case_id, record)
            current = record.case if record is not None else None
            self.save(session, _merge(current, get_case_document(session, case_id), document.case), document.case)
            put_case_document(session, document.case)
        now = dt.datetime.now(dt.UTC)
        for case_id in dict.fromkeys(case_id for _, _, case_id in items):
            self.report.seen(case_id, get_case_record(session, case_id))
            mine = [(i, k) for i, k, c in items if c == case_id]
            before = {ResourceKey(s.resource_type, s.key): s for s in get_resources(session, case_id)}
            after = dict(before)
            for item, key in mine:
                after[key] = _stored(case_id, key, item, now)
            old = self.view(case_id, before.values())
            new = self.view(case_id, after.values())
            assert new is not None
            # A synthesised episode's fields are made up: they may replace only other made-up ones.
            made_up = new.synthesised and (old is None or not old.synthesised)
            merged = _merge(get_case(session, case_id), old.case if old else None, new.case, made_up=made_up)
            # What its resources now write as a year or a month, kept with the case (``store._written``).
            days = dates_as_written(merged or new.case, copies_by_key(after.values()), self.settings.identifier_system)
            self.save(session, merged, new.case, days)
            self.report.views[case_id] = new
            for version in ("R4", "R5"):
                pairs = [(k.value, i.resource) for i, k in mine if i.version == version]
                put_resources(session, case_id, pairs, fhir_version=version, now=now)
            written.append(case_id)
        return list(dict.fromkeys(written))

    def save(
        self, session: Session, merged: Case | None, source: Case, written: Mapping[str, str] | None = None
    ) -> None:
        """Save the merged case, or ``source``'s when the store's changes no longer fit with it (reported);
        ``written``: its dates as written, when its resources were just stored (see ``save_case``)."""
        if merged is None:
            self.report.replaced.add(source.id)
        self.report.revisions[source.id] = save_case(session, merged or source, written=written)

    def view(self, case_id: str, stored: Iterable[StoredResource]) -> CaseView | None:
        """The view of a case's resources; the last one computed is reused while they are the same."""
        stored = list(stored)
        if not stored:
            return None
        fingerprint = frozenset((s.resource_type, s.key, s.fhir_version, s.content_hash) for s in stored)
        held = self.memo.get(case_id)
        if held is not None and held[0] == fingerprint:
            return held[1]
        view = read_view(case_id, stored, self.settings.identifier_system, self.default)
        self.memo[case_id] = (fingerprint, view)
        return view


def _stored(case_id: str, key: ResourceKey, item: FhirItem, now: dt.datetime) -> StoredResource:
    """An item as the store will hold it, to read the case before the case row (which it refers to) exists."""
    return StoredResource(
        resource_type=key.type,
        key=key.value,
        case_id=case_id,
        fhir_version=item.version or "R4",
        raw=item.resource,
        content_hash=content_hash(item.resource),
        source=None,
        updated_at=now,
    )


class _Counts:
    """Counts what happened to each case across the files of one import."""

    def __init__(self) -> None:
        self.initial: dict[str, int] = {}
        self.revisions: dict[str, int] = {}
        self.views: dict[str, CaseView] = {}
        self.replaced: set[str] = set()

    def seen(self, case_id: str, record: Any) -> None:
        self.initial.setdefault(case_id, record.revision if record is not None else 0)

    def build(self, files: list[ParsedFile], placed: Mapping[ResourceKey, tuple[str, str]]) -> ImportReport:
        """The report; ``placed`` holds each resource's case and version (a key imported twice counts once)."""
        versions = Counter(version for _, version in placed.values())
        raw_only = sum(1 for key, (case_id, _) in placed.items() if key not in self.views[case_id].base)
        created = sum(1 for c, r in self.initial.items() if r == 0)
        updated = sum(1 for c, r in self.initial.items() if r and self.revisions[c] > r)
        return ImportReport(
            files=len(files),
            resources=len(placed),
            versions={str(v): n for v, n in versions.items()},
            case_documents=sum(len(f.cases) for f in files),
            cases_created=created,
            cases_updated=updated,
            cases_unchanged=len(self.initial) - created - updated,
            raw_only=raw_only,
            case_ids=sorted(self.initial),
            replaced=sorted(self.replaced),
        )


def _known_patients(session: Session) -> Known:
    """A reference by identifier only that no entry of its file answers: the one patient in the store
    holding that identifier (a patient imported or pulled before), by the id the case names them by."""

    @functools.cache
    def known(rtype: str | None, system: str, value: str) -> str | None:
        if rtype not in (None, "Patient"):
            return None
        found = {str(p.raw.get("id") or p.key) for p in find_by_identifier(session, "Patient", system, value)}
        return f"Patient/{found.pop()}" if len(found) == 1 else None

    return known


def import_files(
    store: Store,
    paths: Iterable[str | Path],
    settings: Settings,
    *,
    fhir_version: str = "auto",
    then: Callable[[Session, list[str]], None] | None = None,
) -> ImportReport:
    """Import FHIR resources/Bundles (R4 or R5) and case JSON from ``paths`` (``-``: stdin) into ``store``.

    ``fhir_version`` ``auto`` decides the release per resource (``_files.py``); ``R4``/``R5`` forces
    it. Raises :class:`BadInputError` (nothing written) when a file is not JSON, not FHIR, nor cases.
    ``then`` runs in each file's transaction with the ids of the cases it wrote (an audit record, say).
    """
    forced = explicit_fhir_version(fhir_version)
    default = fhir_version_without_server(fhir_version, settings.fhir_version)
    files = [parse_file(p, forced=forced) for p in paths]
    decide_versions(files, default)
    system = settings.identifier_system
    with store.session(read_only=True) as session:
        known = _known_patients(session)
        for parsed in files:
            resolve_bundle_references(parsed, system, known)
    keyed = [(item, key_of(item, system), n) for n, f in enumerate(files) for item in f.resources]
    with store.session(read_only=True) as session:
        refuse_clashes(session, keyed, [f.name for f in files])
        case_ids = place(session, keyed, system)
    run = _Run(settings, default)
    placed: dict[ResourceKey, tuple[str, str]] = {}
    for n, parsed in enumerate(files):
        mine = {k: (item, k, c) for (item, k, f), c in zip(keyed, case_ids) if f == n}  # the last copy of a key wins
        with store.session() as session:
            written = run.write(session, parsed, list(mine.values()))
            if then is not None:
                then(session, written)
        placed.update({k: (c, str(item.version)) for k, (item, _, c) in mine.items()})
    return run.report.build(files, placed)
