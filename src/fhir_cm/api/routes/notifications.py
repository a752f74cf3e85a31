"""Where FHIR servers deliver subscription notifications: ``/notifications/{subscription_id}``.

Not behind an API key: the server proves itself with the subscription's own secret, sent back as the
``Authorization: Bearer …`` channel header fhir-cm gave it (``fhir-cm subscribe``). No or a wrong
secret, or a subscription that is not ours → 401 and nothing recorded. HAPI's R4 rest-hook delivers
the changed resource with ``PUT /notifications/{id}/Encounter/{eid}``; an empty payload arrives as a
bare ``POST``; backport servers ``POST`` a ``history`` Bundle (handshake, heartbeat, event
notification). The answer is ``200`` with what was queued; the worker does the tracking.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from starlette.concurrency import run_in_threadpool

from fhir_cm import jobs
from fhir_cm.store import Store
from fhir_cm.sync import NotificationMalformed, NotificationOutcome, NotificationRefused, check_secret

from .._deps import get_store
from .._problems import InvalidInput, ProblemDocument, UnauthorizedProblem

__all__ = ["router"]

_PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": ProblemDocument, "description": text, "content": {"application/problem+json": {}}}
    for status, text in {
        400: "A body that is not JSON",
        401: "No secret, a wrong one, or not a subscription of ours (nothing recorded)",
        422: "A malformed notification, or a path that is not a subscription's",
    }.items()
}
router = APIRouter(prefix="/notifications", tags=["subscription notifications"], responses=_PROBLEMS)
SubscriptionId = Annotated[str, Path(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9\-]+$")]
ResourceType = Annotated[str, Path(pattern=r"^[A-Z][A-Za-z]{1,63}$")]
#: A FHIR id but '.' and '..' (``fhir.check_id``: no request can carry them); no look-ahead in the
#: validator's regular expressions, so the short ids are spelt out.
ResourceId = Annotated[
    str, Path(pattern=r"^(?:[A-Za-z0-9\-.]{3,64}|[A-Za-z0-9\-]{1,2}|[A-Za-z0-9\-]\.|\.[A-Za-z0-9\-])$")
]
_METHODS = ["POST", "PUT"]


def _secret(request: Request) -> str | None:
    header = request.headers.get("authorization") or ""
    scheme, _, token = header.strip().partition(" ")
    return token.strip() or None if scheme.lower() == "bearer" else None


async def _body(request: Request) -> Any:
    raw = await request.body()
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError):  # RecursionError: nested beyond any resource
        raise InvalidInput("the notification body is not JSON") from None


async def _receive(
    request: Request, store: Store, subscription_id: str, path: tuple[str, str] | None
) -> NotificationOutcome:
    secret = _secret(request)
    try:
        await run_in_threadpool(check_secret, store, subscription_id, secret)  # before reading anything sent
        body = await _body(request)
        return await run_in_threadpool(jobs.notified, store, subscription_id, secret, body, path)
    except NotificationMalformed as exc:
        raise InvalidInput(str(exc)) from None
    except NotificationRefused:
        raise UnauthorizedProblem(
            "not a notification of a subscription of ours: the subscription's secret is required", error="invalid_token"
        ) from None


async def notification(
    request: Request, subscription_id: SubscriptionId, store: Annotated[Store, Depends(get_store)]
) -> NotificationOutcome:
    """A handshake, heartbeat or event notification (backport Bundle), a resource, or an empty ping."""
    return await _receive(request, store, subscription_id, None)


async def resource_notification(
    request: Request,
    subscription_id: SubscriptionId,
    resource_type: ResourceType,
    resource_id: ResourceId,
    store: Annotated[Store, Depends(get_store)],
) -> NotificationOutcome:
    """The changed resource itself (HAPI's R4 rest-hook ``PUT``), or its address with no body."""
    return await _receive(request, store, subscription_id, (resource_type, resource_id))


# One route per method: an operation id names one operation (a route of two methods gave both the same).
for _method in _METHODS:
    router.add_api_route(
        "/{subscription_id}",
        notification,
        methods=[_method],
        response_model=NotificationOutcome,
        summary="Receive a subscription notification",
        operation_id=f"notification_{_method.lower()}",
    )
    router.add_api_route(
        "/{subscription_id}/{resource_type}/{resource_id}",
        resource_notification,
        methods=[_method],
        response_model=NotificationOutcome,
        summary="Receive a resource a subscription delivers",
        operation_id=f"resource_notification_{_method.lower()}",
    )
