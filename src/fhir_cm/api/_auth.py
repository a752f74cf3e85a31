"""Who is calling: API keys from ``Authorization: Bearer <key>`` or ``X-API-Key: <key>``.

401 means "we do not know who you are" (no key, a malformed or unknown key, a revoked one) and
always carries ``WWW-Authenticate``; 403 means "we know you, and your role may not do this".
A supervisor key scoped to a programme this build does not know (a typo stored by hand, a programme
since dropped) is refused with 403 on every route: read as no scope, it would oversee every programme.
The key itself never reaches a log: only the principal's key id does.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict
from starlette.requests import HTTPConnection

from fhir_cm.domain import ProgrammeType
from fhir_cm.store import ApiKey, ApiRole, Store, authenticate_api_key

from ._problems import ForbiddenProblem, UnauthorizedProblem

__all__ = ["Principal", "authenticate", "presented_key"]

#: Longer than any key fhir-cm issues; anything longer is refused before touching the store.
_MAX_KEY = 200


class Principal(BaseModel):
    """An authenticated caller: the API key's id, its role and what the role is scoped to."""

    model_config = ConfigDict(frozen=True)

    id: str
    name: str
    role: ApiRole
    practitioner_id: str | None = None
    programme: ProgrammeType | None = None

    @classmethod
    def from_key(cls, key: ApiKey) -> Principal:
        """The principal an API key stands for; 403 for a supervisor key whose programme is unknown.

        A programme only scopes a supervisor: other roles' keys keep working whatever it says.
        """
        known = key.programme is not None and key.programme in ProgrammeType._value2member_map_
        if key.role is ApiRole.SUPERVISOR and key.programme is not None and not known:
            raise ForbiddenProblem("this supervisor key is scoped to a programme this service does not know")
        programme = ProgrammeType(key.programme) if known and key.programme else None
        return cls(
            id=key.key_id, name=key.name, role=key.role, practitioner_id=key.practitioner_id, programme=programme
        )


def presented_key(conn: HTTPConnection) -> str | None:
    """The key the client sent, if any; a non-Bearer ``Authorization`` scheme alone is refused outright.

    Beside ``X-API-Key`` another scheme is not ours to judge: a reverse proxy's HTTP Basic login makes
    the browser send ``Authorization: Basic …`` with every request, the console's too, and the key is
    in ``X-API-Key``.
    """
    header = conn.headers.get("authorization")
    key = conn.headers.get("x-api-key")
    if header is not None:
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() == "bearer":
            return token.strip() or None
        if key is None or not key.strip():
            raise UnauthorizedProblem(
                "use 'Authorization: Bearer <API key>' or 'X-API-Key: <API key>'", error="invalid_request"
            )
    return key.strip() if key is not None and key.strip() else None


def authenticate(conn: HTTPConnection, store: Store) -> Principal:
    """The principal behind the request's key; raises ``UnauthorizedProblem`` without one that is valid and active."""
    key = presented_key(conn)
    if key is None:
        raise UnauthorizedProblem("an API key is required (Authorization: Bearer <key> or X-API-Key: <key>)")
    found = None
    if len(key) <= _MAX_KEY:
        with store.lookup() as session:
            found = authenticate_api_key(session, key)
    if found is None:
        raise UnauthorizedProblem("the API key is not valid (unknown, malformed or revoked)", error="invalid_token")
    return Principal.from_key(found)
