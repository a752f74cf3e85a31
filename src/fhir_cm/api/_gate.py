"""No answer about ``/api/v1`` to a caller without a valid key but 401.

Every route of the case-management API authenticates in a dependency, but some answers come before
any route's dependencies run: the router's 404 for a path no route has, its 405 for a method the
path does not serve, its redirect of ``/cases/`` to ``/cases``, and FastAPI's 422 for a body that
is not JSON (read before the dependencies). Told apart from a 401, each would show a stranger which
paths the API has. This middleware looks at an ``/api/v1`` answer made without a principal (no
route's authentication ran) and, unless the request's key is valid, answers the 401 the routes
would have given instead; a caller with a valid key gets the answer as it was. Requests a route
authenticated (nearly all) cost nothing here; the others are authenticated once more.
"""

from __future__ import annotations

from typing import Any

import anyio.to_thread
from starlette.requests import Request
from starlette.types import Message, Receive, Scope, Send

from ._auth import authenticate
from ._middleware import HttpMiddleware
from ._problems import Problem, problem_response

__all__ = ["ApiAuthGate"]


def _guarded(path: str, prefix: str) -> bool:
    return path == prefix or path.startswith(prefix + "/")


class ApiAuthGate(HttpMiddleware):
    """Answer 401 (or the key's 403) for an ``/api/v1`` answer that no authentication preceded."""

    def __init__(self, app: Any, prefix: str) -> None:
        super().__init__(app)
        self.prefix = prefix

    async def http(self, scope: Scope, receive: Receive, send: Send) -> None:
        if not _guarded(str(scope.get("path", "")), self.prefix):
            await self.app(scope, receive, send)
            return
        refused = False

        async def answer(message: Message) -> None:
            nonlocal refused
            if refused:
                return  # the original answer's body, replaced by the refusal
            if message["type"] == "http.response.start" and not self._vouched(scope, message["status"]):
                request = Request(scope)
                try:
                    principal = await anyio.to_thread.run_sync(authenticate, request, scope["app"].state.store)
                except Problem as exc:
                    refused = True
                    await self._refuse(request, exc, send)
                    return
                scope.setdefault("state", {})["principal_id"] = principal.id
            await send(message)

        await self.app(scope, receive, answer)

    @staticmethod
    def _vouched(scope: Scope, status: int) -> bool:
        """A route authenticated this request, or its answer is already authentication's (401, 403)."""
        return status in (401, 403) or (scope.get("state") or {}).get("principal_id") is not None

    @staticmethod
    async def _refuse(request: Request, exc: Problem, send: Send) -> None:
        response = problem_response(
            request, exc.status, slug=exc.slug, title=exc.title, detail=exc.detail, headers=exc.headers
        )
        await response(request.scope, request.receive, send)
