"""A strict JSON body parser for every route of the case-management API.

Python's ``json`` accepts things that later break a store or a FHIR server with a 500: lone
surrogates (``"\\ud800"``, which cannot be encoded as UTF-8), ``NaN`` and ``Infinity``, and NUL
characters (which PostgreSQL text refuses). Parsing with orjson rejects the first two as invalid
JSON; NUL is refused here. Either way the client gets a 422 naming the body, not a 500 later on.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from fastapi.routing import APIRoute

from .. import decimals

__all__ = ["StrictJsonRoute", "api_router"]


def _has_nul(value: Any) -> bool:
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(_has_nul(k) or _has_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_nul(v) for v in value)
    return False


class _StrictJsonRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            text = body.decode("utf-8", errors="replace")
            try:
                value = decimals.loads(body)
            except orjson.JSONDecodeError as exc:
                raise json.JSONDecodeError(exc.msg, text, exc.pos) from None
            if _has_nul(value):
                raise json.JSONDecodeError("NUL characters (\\u0000) are not allowed in text", text, 0)
            self._json = value
        return self._json


class StrictJsonRoute(APIRoute):
    """An ``APIRoute`` whose request body is parsed strictly (see the module docstring)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(_StrictJsonRequest(request.scope, request.receive))

        return strict


def api_router(**kwargs: Any) -> APIRouter:
    """An ``APIRouter`` using :class:`StrictJsonRoute` for its routes."""
    return APIRouter(route_class=StrictJsonRoute, **kwargs)
