"""FastAPI dependencies: the store, a session, the settings, today's date and the calling principal.

Everything comes from ``app.state`` (set by ``create_app``), so a test builds an app on its own
store and clock and nothing is global. Dependencies that only look things up are ``async``: FastAPI runs
a plain function in the thread pool, and a hop there and back for each would cost more than the lookup.
The one that reads the store (``get_principal``) is a plain function, so the event loop never waits
on the database; it records the principal's key id for the access log.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from fastapi import Depends, Header, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from fhir_cm.config import Settings
from fhir_cm.store import ApiRole, Store

from ._auth import Principal, authenticate
from ._casework import Work
from ._problems import ForbiddenProblem

__all__ = [
    "CaseWork",
    "CaseWorker",
    "CurrentPrincipal",
    "Supervisor",
    "SupervisorOfAll",
    "Today",
    "get_principal",
    "get_settings",
    "get_store",
    "get_today",
    "get_work",
    "require_case_worker",
    "require_fhir_reader",
    "require_supervisor",
    "require_supervisor_of_all",
]


async def get_store(request: Request) -> Store:
    """The app's open store."""
    store: Store = request.app.state.store
    return store


async def get_settings(request: Request) -> Settings:
    """The settings the app was created with."""
    settings: Settings = request.app.state.settings
    return settings


async def get_today(request: Request) -> dt.date:
    """Today, from the app's clock (tests pin it)."""
    today: dt.date = request.app.state.clock()
    return today


_BEARER = HTTPBearer(auto_error=False, scheme_name="bearer", description="Authorization: Bearer <API key>")
_API_KEY = APIKeyHeader(name="X-API-Key", auto_error=False, scheme_name="apiKey", description="X-API-Key: <API key>")


def get_principal(
    request: Request,
    store: Annotated[Store, Depends(get_store)],
    _bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)] = None,
    _api_key: Annotated[str | None, Depends(_API_KEY)] = None,
) -> Principal:
    """The authenticated caller (401 without a valid key).

    The two security dependencies only document the schemes in OpenAPI; ``authenticate`` reads
    the headers itself, so that a wrong scheme is a 401 with a reason rather than silently ignored.
    """
    principal = authenticate(request, store)
    request.state.principal_id = principal.id
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def require_case_worker(principal: CurrentPrincipal) -> Principal:
    """Case managers and supervisors: the people who work cases (403 for service keys)."""
    if principal.role not in (ApiRole.CASE_MANAGER, ApiRole.SUPERVISOR):
        raise ForbiddenProblem("service keys may read the FHIR facade (/fhir) only, not the case-management API")
    return principal


async def require_supervisor(principal: CurrentPrincipal) -> Principal:
    """Supervisors only: sync control, quarantine, the audit log."""
    if principal.role is not ApiRole.SUPERVISOR:
        raise ForbiddenProblem("only a supervisor key may do this")
    return principal


async def require_supervisor_of_all(principal: CurrentPrincipal) -> Principal:
    """Supervisors over every programme: for patient data of no case, and so of no programme (the
    resources a pull set aside), which a supervisor limited to one programme would read of all."""
    if principal.role is not ApiRole.SUPERVISOR or principal.programme is not None:
        raise ForbiddenProblem("only a supervisor key over every programme may do this")
    return principal


async def require_fhir_reader(principal: CurrentPrincipal) -> Principal:
    """Who may read the FHIR facade: service keys, and supervisors over every programme.

    The facade serves every case's resources without per-case rules, so a case manager (own
    cases only) or a supervisor limited to one programme would see more than their role allows.
    """
    if principal.role is ApiRole.SERVICE or (principal.role is ApiRole.SUPERVISOR and principal.programme is None):
        return principal
    raise ForbiddenProblem("the FHIR facade is for service keys (and supervisors of all programmes)")


CaseWorker = Annotated[Principal, Depends(require_case_worker)]
Supervisor = Annotated[Principal, Depends(require_supervisor)]
SupervisorOfAll = Annotated[Principal, Depends(require_supervisor_of_all)]
Today = Annotated[dt.date, Depends(get_today)]


async def get_work(
    request: Request,
    principal: CaseWorker,
    store: Annotated[Store, Depends(get_store)],
    today: Today,
    if_match: Annotated[
        str | None,
        Header(max_length=200, description="The case's ETag (its revision) a change is based on; 412 if stale."),
    ] = None,
) -> Work:
    """Everything a case route needs: store, principal, today, request id, ``If-Match`` and the domain's rules.

    ``If-Match`` sent on several lines is one list (RFC 9110, 5.3), not its first line (the parameter,
    which FastAPI reads from the first, documents the header and bounds that line).
    """
    settings: Settings = request.app.state.settings
    lines = request.headers.getlist("if-match")
    return Work(
        store,
        principal,
        today,
        getattr(request.state, "request_id", None),
        ", ".join(lines) if lines else if_match,
        rules=settings.plausibility(today),
        views=request.app.state.views,
        parts=request.app.state.parts,
        case_json=request.app.state.case_json,
    )


CaseWork = Annotated[Work, Depends(get_work)]
