"""One resource as the façade serves it: its JSON, its version and the values its search parameters see."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from fhir_cm.mapping import ResourceKey

from ... import decimals
from ._match import Kind, extract, only_type
from ._params import Criterion, params_for

__all__ = ["Indexed", "indexed"]


@dataclass(frozen=True, slots=True)
class Indexed:
    """One resource as served, with the values its search parameters see."""

    type: str
    id: str
    case_id: str
    body: bytes
    version_id: str
    last_updated: dt.datetime
    values: Mapping[str, tuple[Any, ...]]

    def matches(self, criteria: Sequence[Criterion]) -> bool:
        """True when every criterion (AND) has an alternative (OR) that matches."""
        return all(any(m.matches(self.values[c.param.name]) for m in c.alternatives) for c in criteria)


def indexed(
    key: ResourceKey,
    rid: str,
    case_id: str,
    resource: dict[str, Any],
    changed: dt.datetime,
    own: frozenset[str] = frozenset(),
) -> Indexed:
    """The resource as served under ``rid`` — ``meta.versionId`` a hash of its content, ``meta.lastUpdated``
    ``changed`` — with its search values; a reference is local when relative or at one of ``own``."""
    content = {k: v for k, v in resource.items() if k not in ("resourceType", "id", "meta")}
    # Any stable hash of the content will do for versionId: the mapping writes elements in a fixed order.
    version_id = hashlib.blake2b(decimals.dumps(content), digest_size=8).hexdigest()
    meta = {k: v for k, v in (resource.get("meta") or {}).items() if k not in ("versionId", "lastUpdated")}
    body = {
        "resourceType": key.type,
        "id": rid,
        "meta": {"versionId": version_id, "lastUpdated": changed.isoformat(), **meta},
        **content,
    }
    by_path: dict[tuple[Kind, str], tuple[Any, ...]] = {}
    values = {}
    for p in params_for(key.type).values():
        if (p.kind, p.path) not in by_path:
            by_path[p.kind, p.path] = extract(p.kind, body, p.path, own)
        values[p.name] = only_type(by_path[p.kind, p.path], p.target)
    return Indexed(key.type, rid, case_id, decimals.dumps(body), version_id, changed, values)
