"""Per-request plumbing as one plain ASGI middleware: a request id, metrics, the access log, and the
header fields every answer carries.

The request id is the client's ``X-Request-Id`` when it looks like an id (letters, digits and
``._:-``, at most 128 characters), a fresh one otherwise; it is echoed on every response and
written to every log line and audit row of the request.

Answers carry PHI, so unless a route says otherwise (the console's own files) each is
``Cache-Control: no-store`` — no browser or proxy keeps a copy, e.g. on a shared computer's disk
after the console signed out — and ``X-Content-Type-Options: nosniff``, read as its type only.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import uuid
from contextvars import ContextVar
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["REQUEST_ID", "UNMATCHED", "HttpMiddleware", "RequestContextMiddleware"]

#: The id of the request being served, for code that is handed no request (the FHIR façade's audit
#: hook); worker threads of the request see it too (anyio copies the context into them).
REQUEST_ID: ContextVar[str | None] = ContextVar("fhir_cm_request_id", default=None)

log = logging.getLogger("fhir_cm.api.access")
_SANE_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
#: Header fields added to every answer that does not set them itself.
_DEFAULT_HEADERS = ((b"cache-control", b"no-store"), (b"x-content-type-options", b"nosniff"))


def _incoming_id(scope: Scope) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            text = value.decode("latin-1")
            return text if _SANE_ID.match(text) else None
    return None


#: The one label of every request no route template can name: the raw path never becomes a label.
UNMATCHED = "<unmatched>"


def _route(scope: Scope) -> str:
    """The route template (``/api/v1/cases/{case_id}``) of a matched request, ``UNMATCHED`` otherwise.

    Logs and the unauthenticated ``/metrics`` carry this label, so it must never hold a path
    segment a client chose (patient ids, ``$everything``, ``_history/2``): a raw path would leak
    identifiers and grow the label set without bound. The template is the full one FastAPI
    resolved for the request; failing that, the matched route's own template when it alone
    matches the whole path (a route's path is relative to its router in some FastAPI versions,
    and a prefix cannot be told from the ids around it). Anything else gets the fixed label.
    """
    route = scope.get("route")
    if route is None:
        return UNMATCHED
    context = (scope.get("fastapi") or {}).get("effective_route_context")
    effective = getattr(context, "path_format", None)
    if getattr(context, "original_route", None) is route and isinstance(effective, str) and effective.startswith("/"):
        return effective
    template = getattr(route, "path_format", None)
    pattern = getattr(route, "path_regex", None)
    path = str(scope.get("path", ""))
    if isinstance(template, str) and pattern is not None and pattern.fullmatch(path):
        return template
    return UNMATCHED


class HttpMiddleware:
    """A plain ASGI middleware of HTTP requests (``http``); anything else (lifespan) passes through."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.http(scope, receive, send)

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        """One HTTP request, passed on to ``self.app`` as the middleware sees fit."""
        raise NotImplementedError


async def _stopping(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request the server cancelled as it stopped."""
    from starlette.requests import Request

    from ._problems import problem_response

    # A route in a thread may have committed its change before the cancellation reached it: a write
    # is to be checked before it is repeated (a pull or a push may simply be run again).
    detail = "the service stopped while this request ran; what it completed is kept: check before repeating a change"
    response = problem_response(
        Request(scope), 503, slug="stopping", title="Service stopping", detail=detail, headers={"Retry-After": "30"}
    )
    await response(scope, receive, send)


class RequestContextMiddleware(HttpMiddleware):
    """Assigns the request id, times the request, counts it, logs one line without PHI, and adds the
    header fields every answer carries (``_DEFAULT_HEADERS``).

    The metrics are the app's (``app.state.metrics``), looked up per request.
    """

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        request_id = _incoming_id(scope) or uuid.uuid4().hex
        state: dict[str, Any] = scope.setdefault("state", {})
        state["request_id"] = request_id
        token = REQUEST_ID.set(request_id)
        status = 500
        answering = False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"x-request-id"]
                named = {k.lower() for k, _ in headers}
                headers.extend(field for field in _DEFAULT_HEADERS if field[0] not in named)
                headers.append((b"x-request-id", request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # Only the server cancels a request: stopping, once its grace is over (``cli._serving``).
            # The client is told to come back (503) rather than given uvicorn's bare 500.
            if answering or (task := asyncio.current_task()) is None:
                raise
            task.uncancel()
            await _stopping(scope, receive, send_with_id)
        finally:
            REQUEST_ID.reset(token)
            seconds = time.perf_counter() - started
            route = _route(scope)
            scope["app"].state.metrics.observe_request(scope["method"], route, status, seconds)
            log.info(
                "request",
                extra={
                    "fields": {
                        "request_id": request_id,
                        "method": scope["method"],
                        "route": route,
                        "status": status,
                        "duration_ms": round(seconds * 1000, 2),
                        "principal": state.get("principal_id"),
                    }
                },
            )
