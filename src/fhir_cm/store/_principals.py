"""API keys: who may call the service, in which role, hashed at rest.

A key is ``fcm_<key id>_<secret>``: the key id (public, 16 hex characters) finds the row, the
secret (32 random bytes) proves possession. Only the SHA-256 of the whole key is stored: with that
much entropy a fast hash is enough (there is nothing to brute-force), and a stolen database yields
no usable key. Keys are compared in constant time, and the key itself is shown exactly once, when
it is created.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import secrets
from enum import StrEnum

from pydantic import BaseModel, ConfigDict
from sqlalchemy import CheckConstraint, String, bindparam, insert, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from ._errors import NotFound
from ._tables import ID, Base, _in
from ._types import Reader, UTCDateTime, utcnow

__all__ = [
    "ApiKey",
    "ApiRole",
    "authenticate_api_key",
    "create_api_key",
    "get_api_key",
    "key_id_of",
    "list_api_keys",
    "revoke_api_key",
]

_PREFIX = "fcm"
_KEY = re.compile(rf"^{_PREFIX}_(?P<key_id>[0-9a-f]{{16}})_(?P<secret>[A-Za-z0-9_-]{{43}})$")


class ApiRole(StrEnum):
    """What a caller may do: work their own cases, oversee a programme, or read the FHIR facade."""

    CASE_MANAGER = "case-manager"
    SUPERVISOR = "supervisor"
    SERVICE = "service"


class ApiKeyRow(Base):
    """One API key: its public id, the hash of the whole key, and the principal it stands for."""

    __tablename__ = "api_keys"

    key_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(32))
    practitioner_id: Mapped[str | None] = mapped_column(String(ID))
    programme: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    __table_args__ = (CheckConstraint(_in("role", [r.value for r in ApiRole]), name="role"),)


class ApiKey(BaseModel):
    """An API key as stored, without its secret: the principal a caller authenticates as."""

    model_config = ConfigDict(frozen=True)

    key_id: str
    name: str
    role: ApiRole
    practitioner_id: str | None
    programme: str | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None

    @property
    def active(self) -> bool:
        """Whether the key still opens the door."""
        return self.revoked_at is None


_FIELDS = tuple(c for c in ApiKeyRow.__table__.c if c.name != "key_hash")
#: Every request's key, looked up by one statement built once: built per call, its comparison and
#: SQLAlchemy's cache key for it were most of a request's authentication (about 0.75 ms of CPU).
_BY_KEY_ID = select(ApiKeyRow.key_hash, *_FIELDS).where(ApiKeyRow.key_id == bindparam("key_id"))


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_api_key(
    session: Session,
    *,
    name: str,
    role: ApiRole,
    practitioner_id: str | None = None,
    programme: str | None = None,
    now: dt.datetime | None = None,
) -> tuple[ApiKey, str]:
    """Store a new key and return it with the key itself, which is never stored and cannot be shown again.

    A case manager's key must name the practitioner it belongs to (their cases are found by it).
    """
    if role is ApiRole.CASE_MANAGER and not practitioner_id:
        raise ValueError("a case-manager key needs the practitioner id of the case manager")
    key_id = secrets.token_hex(8)
    key = f"{_PREFIX}_{key_id}_{secrets.token_urlsafe(32)}"
    values = {
        "key_id": key_id,
        "name": name,
        "role": role.value,
        "practitioner_id": practitioner_id,
        "programme": programme,
        "created_at": now or utcnow(),
        "revoked_at": None,
    }
    session.execute(insert(ApiKeyRow).values(**values, key_hash=_hash(key)))
    return ApiKey.model_validate(values), key


def authenticate_api_key(session: Reader, presented: str) -> ApiKey | None:
    """The active key ``presented`` is, or None if it is malformed, unknown, wrong or revoked."""
    match = _KEY.match(presented)
    if match is None:
        return None
    row = session.execute(_BY_KEY_ID, {"key_id": match["key_id"]}).one_or_none()
    # Hash either way, so an unknown key id costs the same as a wrong secret.
    presented_hash = _hash(presented)
    stored_hash = row.key_hash if row is not None else "0" * 64
    if not hmac.compare_digest(presented_hash, stored_hash) or row is None or row.revoked_at is not None:
        return None
    return ApiKey.model_validate({name: value for name, value in row._mapping.items() if name != "key_hash"})


def get_api_key(session: Session, key_id: str) -> ApiKey | None:
    """A key by its public id, revoked or not."""
    row = session.execute(select(*_FIELDS).where(ApiKeyRow.key_id == key_id)).one_or_none()
    return None if row is None else ApiKey.model_validate(dict(row._mapping))


def list_api_keys(session: Session, *, include_revoked: bool = True) -> list[ApiKey]:
    """Every key, oldest first (secrets are not stored, so none can be listed)."""
    query = select(*_FIELDS).order_by(ApiKeyRow.created_at, ApiKeyRow.key_id)
    if not include_revoked:
        query = query.where(ApiKeyRow.revoked_at.is_(None))
    return [ApiKey.model_validate(dict(row._mapping)) for row in session.execute(query)]


_NAMED = re.compile(rf"^(?:{_PREFIX}_)?(?P<key_id>[0-9a-f]{{16}})(?:_[A-Za-z0-9_-]*)?$")


def key_id_of(text: str) -> str | None:
    """The key id ``text`` names: a key id, ``fcm_<key id>`` or a whole key (someone revoking the key
    they hold, or one found where it leaked); None when it names none."""
    match = _NAMED.match(text.strip())
    return match["key_id"] if match else None


def revoke_api_key(session: Session, key_id: str, *, now: dt.datetime | None = None) -> ApiKey:
    """Revoke a key at once; revoking a revoked key keeps its first revocation time."""
    session.execute(
        update(ApiKeyRow)
        .where(ApiKeyRow.key_id == key_id, ApiKeyRow.revoked_at.is_(None))
        .values(revoked_at=now or utcnow())
    )
    key = get_api_key(session, key_id)
    if key is None:
        raise NotFound(f"no API key {key_id}")
    return key
