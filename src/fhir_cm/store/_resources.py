"""FHIR resources of a case, kept exactly as received or imported, so an export can give them back."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable, Mapping
from functools import cache
from typing import Any

import orjson
from pydantic import BaseModel, ConfigDict
from sqlalchemy import Text, cast, select
from sqlalchemy.orm import Session

from .. import decimals
from ..mapping import FhirVersion  # the one definition; re-exported
from ._dialect import insert
from ._stamps import RESOURCES, note_change
from ._tables import ResourceRow
from ._types import connection_of, utcnow

__all__ = [
    "FhirVersion",
    "StoredResource",
    "content_hash",
    "content_json",
    "get_resource",
    "get_resources",
    "put_resources",
]


#: Elements a server rewrites on its own (``id`` on create, ``meta`` on every write); not content.
_NOT_CONTENT = frozenset({"id", "meta"})


def content_json(resource: Mapping[str, Any]) -> bytes:
    """A resource's content as canonical JSON: sorted keys, without ``id`` and ``meta``."""
    body = {k: v for k, v in resource.items() if k not in _NOT_CONTENT}
    return decimals.dumps(body, option=orjson.OPT_SORT_KEYS)


def content_hash(resource: Mapping[str, Any], *, content: bytes | None = None) -> str:
    """SHA-256 of a resource's content (``content_json``; pass it as ``content`` when it is at hand).

    Two copies of one resource hash the same whatever server stored them or when; the sync layer
    compares hashes to tell "changed" from "only re-stamped by the server".
    """
    return hashlib.sha256(content if content is not None else content_json(resource)).hexdigest()


class StoredResource(BaseModel):
    """A resource of a case as last received, with the FHIR version it came in."""

    model_config = ConfigDict(frozen=True)

    resource_type: str
    key: str
    case_id: str
    fhir_version: FhirVersion
    raw: dict[str, Any]
    content_hash: str
    source: str | None
    updated_at: dt.datetime


def put_resources(
    session: Session,
    case_id: str,
    resources: Iterable[tuple[str, Mapping[str, Any]]],
    *,
    fhir_version: FhirVersion,
    source: str | None = None,
    now: dt.datetime | None = None,
    hashes: Mapping[tuple[str, str], str] | None = None,
) -> int:
    """Store (key, resource JSON) pairs for a case, replacing earlier copies; returns how many.

    The key is the resource's business identifier value; the type comes from ``resourceType``.
    ``source`` says where they came from (a server base URL; None for a file import). ``hashes``:
    ``content_hash`` of resources by ``(type, key)`` where the caller has it already (a pull has,
    for the ledger): not computed again.
    """
    now = now or utcnow()
    rows = []
    for key, raw in resources:
        resource_type = raw.get("resourceType")
        if not isinstance(resource_type, str) or not resource_type:
            raise ValueError(f"resource {key!r} has no resourceType")
        rows.append(
            {
                "resource_type": resource_type,
                "key": key,
                "case_id": case_id,
                "fhir_version": fhir_version,
                "raw": dict(raw),
                "content_hash": (hashes or {}).get((resource_type, key)) or content_hash(raw),
                "source": source,
                "updated_at": now,
            }
        )
    if not rows:
        return 0
    connection_of(session).execute(_upsert(session.get_bind().dialect.name), rows)
    note_change(session, RESOURCES, case_id)
    return len(rows)


_COLUMNS = tuple(ResourceRow.__table__.c)
_KEY = ("resource_type", "key")


@cache
def _upsert(dialect: str) -> Any:
    # Built once per backend: constructing an ON CONFLICT statement costs more than running it.
    stmt = insert(dialect, ResourceRow)
    replaced = {c.name: stmt.excluded[c.name] for c in _COLUMNS if c.name not in _KEY}
    return stmt.on_conflict_do_update(index_elements=list(_KEY), set_=replaced)


def _resource(row: Any) -> StoredResource:
    return StoredResource.model_validate(dict(row._mapping))


def get_resources(session: Session, case_id: str, resource_type: str | None = None) -> list[StoredResource]:
    """The resources stored for a case (optionally of one type), ordered by type and key."""
    query = select(*_COLUMNS).where(ResourceRow.case_id == case_id)
    if resource_type is not None:
        query = query.where(ResourceRow.resource_type == resource_type)
    query = query.order_by(ResourceRow.resource_type, ResourceRow.key)
    return [_resource(row) for row in connection_of(session).execute(query)]


def get_resource(session: Session, resource_type: str, key: str) -> StoredResource | None:
    """One resource by type and key, or None."""
    query = select(*_COLUMNS).where(ResourceRow.resource_type == resource_type, ResourceRow.key == key)
    row = connection_of(session).execute(query).one_or_none()
    return None if row is None else _resource(row)


def find_by_identifier(session: Session, resource_type: str, system: str, value: str) -> list[StoredResource]:
    """The stored resources of a type holding the identifier ``system|value`` (a logical reference's target).

    Found by the value in the stored JSON's text, then checked on the parsed resource, so an escaped
    value is passed by (none found, rather than a wrong one).
    """
    query = select(*_COLUMNS).where(
        ResourceRow.resource_type == resource_type, cast(ResourceRow.raw, Text).contains(value, autoescape=True)
    )
    found = [_resource(row) for row in connection_of(session).execute(query.order_by(ResourceRow.key))]
    return [r for r in found if _holds_identifier(r.raw, system, value)]


def _holds_identifier(resource: Mapping[str, Any], system: str, value: str) -> bool:
    identifiers = resource.get("identifier")
    return isinstance(identifiers, list) and any(
        isinstance(i, dict) and i.get("system") == system and i.get("value") == value for i in identifiers
    )
