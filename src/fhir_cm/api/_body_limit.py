"""A bound on request bodies, answered as every other error is (problem+json, or an OperationOutcome
under ``/fhir``).

FastAPI reads a route's body before its dependencies run, so without a bound an unauthenticated
caller (a CDS Hooks call before its token is checked, a notification before its secret) could make
the process hold whatever it sends. A declared ``Content-Length`` over the bound is refused before
anything is read; a body sent in chunks is counted as it arrives and refused once it passes it.
(FastAPI's own ``max_body_size`` answers in plain text, which no client of this API expects.)
"""

from __future__ import annotations

import http

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ._middleware import HttpMiddleware
from ._problems import problem_response

__all__ = ["BodyLimitMiddleware", "BodyTooLarge"]

#: As the handler of ``HTTPException`` names a 413 (a body counted past the bound ends there).
_TITLE = http.HTTPStatus(413).phrase
_SLUG = _TITLE.lower().replace(" ", "-")


class BodyTooLarge(HTTPException):
    """Raised from ``receive`` while a route reads a body past the bound (FastAPI passes an
    ``HTTPException`` on as it is, and the problem handlers answer it)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, detail=f"the request body is larger than {limit} bytes")


class BodyLimitMiddleware(HttpMiddleware):
    """Refuse request bodies larger than ``limit`` bytes with 413."""

    def __init__(self, app: ASGIApp, limit: int) -> None:
        super().__init__(app)
        self.limit = limit

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        declared = _content_length(scope)
        if declared is not None and declared > self.limit:
            error = BodyTooLarge(self.limit)
            response = problem_response(Request(scope), 413, slug=_SLUG, title=_TITLE, detail=error.detail)
            await response(scope, receive, send)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > self.limit:
                    raise BodyTooLarge(self.limit)
            return message

        await self.app(scope, counted, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            text = value.decode("latin-1").strip()
            return int(text) if text.isascii() and text.isdigit() else None
    return None
