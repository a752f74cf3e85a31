"""When both sides changed a case: a three-way merge by field, and conflicts for what clashes.

The three versions are the *base* (the case as the server last held it, read from the ledger's
server copies), the *local* case (the store, possibly with changes not yet pushed) and the
*server* case (the base with the newly pulled copies). A field that only one side changed takes
that side's value; a field both sides changed to different values is a **clash**: the merged case
takes the server's value, so a later push can never silently overwrite a server edit, and the
local value is kept in the conflict record for a person to re-apply (``Resolution.LOCAL``).

Fields are compared in the domain's words, per entity (a goal's ``achievement``, a referral's
``status``), so two people editing different goals of one case do not clash. ``status``,
``status_history`` and ``period`` move together: the domain only accepts them consistent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy.orm import Session

from ..domain import Case
from ..mapping import careplan_key, careteam_key, episode_key
from ..store import add_conflict

__all__ = ["Clash", "MergeOutcome", "merge_case", "record_clashes"]

#: The lists of entities in a case, and the resource type each entity becomes.
_ENTITY_TYPES: Mapping[str, str] = {
    "needs": "Condition",
    "goals": "Goal",
    "referrals": "ServiceRequest",
    "contacts": "Communication",
    "stays": "Encounter",
}
#: Case fields that only make sense together (the domain validates them as one).
_COUPLED: tuple[tuple[str, ...], ...] = (("status", "status_history", "period"),)
#: Case fields that live on the CarePlan rather than on the EpisodeOfCare.
_ON_CAREPLAN = frozenset({"plan_summary"})
REMOVED_ON_SERVER = "(removed on the server)"
REMOVED_LOCALLY = "(removed locally)"
WHOLE_CASE = "(case could not be merged field by field)"


@dataclass(frozen=True)
class Clash:
    """Fields of one resource that both sides changed, with each side's values (domain JSON)."""

    resource_type: str
    resource_key: str
    fields: tuple[str, ...]
    local: dict[str, Any] | None
    server: dict[str, Any] | None
    #: The same fields as both sides last agreed on them (None: no common version known), shown to the
    #: person who decides beside ours and theirs.
    base: dict[str, Any] | None = None


@dataclass(frozen=True)
class MergeOutcome:
    """The merged case and the clashes found (empty unless clashes were asked for)."""

    case: Case
    clashes: list[Clash] = field(default_factory=list)


def _pick(base: Any, local: Any, server: Any, *, has_base: bool) -> tuple[Any, bool]:
    """``(value, clash)``: the side that changed wins; both changed differently is a clash (server kept)."""
    if local == server:
        return local, False
    if has_base and server == base:
        return local, False
    if has_base and local == base:
        return server, False
    return server, True


class _Merger:
    def __init__(self, base: Case | None, local: Case, server: Case, detect: bool) -> None:
        self.base = base.model_dump(mode="json") if base is not None else None
        self.local, self.server = local.model_dump(mode="json"), server.model_dump(mode="json")
        self.detect = detect
        self.clashes: dict[tuple[str, str], tuple[list[str], dict[str, Any], dict[str, Any], dict[str, Any]]] = {}
        self.keys = {k.type: k.value for k in (episode_key(local), careplan_key(local), careteam_key(local))}

    def clash(
        self, rtype: str, key: str, name: str, local: Any, server: Any, base: Any = None, *, whole: bool = False
    ) -> None:
        if not self.detect:
            return
        fields, lv, sv, bv = self.clashes.setdefault((rtype, key), ([], {}, {}, {}))
        fields.append(name)
        if whole:  # an entity: keep both versions of it whole
            lv.update(local or {})
            sv.update(server or {})
            bv.update(base or {})
        else:
            lv[name], sv[name] = local, server
            if self.base is not None:
                bv[name] = base

    def case_fields(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        lists = {*_ENTITY_TYPES, "team"}
        coupled = {name for group in _COUPLED for name in group}
        groups = [*_COUPLED, *((n,) for n in self.local if n not in lists and n not in coupled)]
        for group in groups:
            b = tuple(self.base[n] for n in group) if self.base is not None else None
            lv, sv = tuple(self.local[n] for n in group), tuple(self.server[n] for n in group)
            value, clashed = _pick(b, lv, sv, has_base=self.base is not None)
            out.update(zip(group, value, strict=True))
            if clashed:
                rtype = "CarePlan" if group[0] in _ON_CAREPLAN else "EpisodeOfCare"
                bases = b if b is not None else (None,) * len(group)
                for name, l_value, s_value, b_value in zip(group, lv, sv, bases, strict=True):
                    if l_value != s_value:
                        self.clash(rtype, self.keys[rtype], name, l_value, s_value, b_value)
        return out

    def entities(self, name: str) -> list[dict[str, Any]]:
        base_list = self.base[name] if self.base is not None else None
        by_id = [{e["id"]: e for e in items} for items in (base_list or [], self.local[name], self.server[name])]
        base, local, server = by_id
        team = name == "team"
        order = [*local, *(i for i in server if i not in local)]
        out: list[dict[str, Any]] = []
        for entity_id in order:
            b, lv, sv = base.get(entity_id), local.get(entity_id), server.get(entity_id)
            rtype = "CareTeam" if team else _ENTITY_TYPES[name]
            key = self.keys["CareTeam"] if team else entity_id
            prefix = f"team[{entity_id}]." if team else ""
            if lv is None or sv is None:
                kept = self._one_sided(b, lv, sv)
                if kept is not None:
                    out.append(kept)
                if (lv is None) != (sv is None) and b is not None and (lv or sv) != b:
                    self.clash(
                        rtype,
                        key,
                        prefix + (REMOVED_LOCALLY if lv is None else REMOVED_ON_SERVER),
                        lv,
                        sv,
                        b,
                        whole=not team,
                    )
                continue
            merged: dict[str, Any] = {}
            for f in dict.fromkeys([*lv, *sv]):
                value, clashed = _pick(b.get(f) if b else None, lv.get(f), sv.get(f), has_base=b is not None)
                merged[f] = value
                if clashed:
                    self.clash(rtype, key, prefix + f, lv.get(f), sv.get(f), b.get(f) if b else None)
            out.append(merged)
        return out

    @staticmethod
    def _one_sided(base: Any, local: Any, server: Any) -> Any:
        """An entity one side lacks: added by the other (kept), or removed (gone unless the other side edited it,
        in which case the server's version wins)."""
        if base is None:
            return local if local is not None else server
        if local is None:  # removed locally
            return server if server != base else None
        return None  # removed on the server: the server's removal stands


def merge_case(base: Case | None, local: Case, server: Case, *, detect_clashes: bool = True) -> MergeOutcome:
    """Merge ``server``'s changes since ``base`` into ``local``.

    Without a ``base`` (nothing known of the server before), every difference counts as changed on
    both sides. With ``detect_clashes=False`` (no local change is waiting to be pushed) clashing
    fields simply take the server's value and nothing is reported.
    """
    m = _Merger(base, local, server, detect_clashes)
    values = m.case_fields()
    for name in (*_ENTITY_TYPES, "team"):
        values[name] = m.entities(name)
    clashes = [
        Clash(t, k, tuple(f), lv, sv, bv if m.base is not None else None)
        for (t, k), (f, lv, sv, bv) in m.clashes.items()
    ]
    try:
        return MergeOutcome(Case.model_validate(values), clashes)
    except ValidationError:
        # The field-by-field result breaks a rule of the case (e.g. a referral following up a stay
        # the other side removed). Keep the server's case and the whole local case in one conflict.
        if not detect_clashes or m.local == m.server:
            return MergeOutcome(server)
        key = episode_key(local)
        return MergeOutcome(server, [Clash(key.type, key.value, (WHOLE_CASE,), m.local, m.server, m.base)])


def record_clashes(session: Session, case_id: str, clashes: Iterable[Clash]) -> list[int]:
    """Record each clash as an open conflict (one per resource; a later clash refreshes it)."""
    return [
        add_conflict(
            session,
            case_id,
            c.resource_type,
            c.resource_key,
            local=c.local,
            server=c.server,
            base=c.base,
            fields=list(c.fields),
        )
        for c in clashes
    ]
