"""HEAD wherever GET is served, once for the whole app (RFC 9110, section 9.3.2).

A server that answers GET should answer HEAD the same way without the content: the same status and
header fields — ``ETag``, ``Content-Type``, the ``Content-Length`` of the body GET would send — under
the same authentication and audit. FastAPI serves a route only for the methods it names, so every
``@router.get`` answered HEAD with 405. This middleware sends a HEAD request through the app as a GET
and passes the answer on without its body; and a 405 whose ``Allow`` names GET names HEAD too,
whoever made it (Starlette's router, the problem handlers, the FHIR façade's read-only answer).

The route sees a GET (so the route template, the auth and the audit are GET's); logs and metrics
outside this middleware see the HEAD the client sent. The OpenAPI document lists the GET operations
only: HEAD is implied for each, as HTTP tools take it to be.
"""

from __future__ import annotations

from starlette.types import Message, Receive, Scope, Send

from ._middleware import HttpMiddleware

__all__ = ["HeadMiddleware", "with_head"]


def with_head(allow: str) -> str:
    """An ``Allow`` value with HEAD added where it names GET (the methods sorted, as the app lists them)."""
    methods = {m.strip().upper() for m in allow.split(",") if m.strip()}
    if "GET" not in methods or "HEAD" in methods:
        return allow
    return ", ".join(sorted(methods | {"HEAD"}))


def _allow_head(message: Message) -> Message:
    headers = [
        (name, with_head(value.decode("latin-1")).encode("latin-1") if name.lower() == b"allow" else value)
        for name, value in message.get("headers", [])
    ]
    return {**message, "headers": headers}


class HeadMiddleware(HttpMiddleware):
    """Answer HEAD as GET without the body; name HEAD in every 405's ``Allow`` that names GET."""

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        head = scope["method"] == "HEAD"
        # A copy: the server's own scope keeps saying HEAD, so it sends no body either way.
        inner = {**scope, "method": "GET"} if head else scope

        async def answer(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                message = _allow_head(message)
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            await self.app(inner, receive, answer)
        finally:
            if head:
                # What routing found (the route, its template) for the middleware outside, which labels by it.
                scope.update({key: value for key, value in inner.items() if key != "method"})
