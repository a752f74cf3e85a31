"""Serving the web console at ``/console``: static files with headers that keep the page to itself.

The page holds an API key, so it must not run anyone else's script or be framed by another site:
a strict Content-Security-Policy (only our own scripts, styles and API), no framing, no referrer
(URLs carry case ids), and no caching of the page by shared caches.
"""

from __future__ import annotations

from collections.abc import MutableMapping
from typing import Any

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from starlette.responses import Response
from starlette.staticfiles import StaticFiles

from fhir_cm.console import STATIC_DIR

__all__ = ["CONSOLE_PATH", "mount_console"]

CONSOLE_PATH = "/console"

_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


class _ConsoleFiles(StaticFiles):
    async def get_response(self, path: str, scope: MutableMapping[str, Any]) -> Response:
        response = await super().get_response(path, scope)
        response.headers.update(_HEADERS)
        return response


def mount_console(app: FastAPI) -> None:
    """Serve the console's files under ``/console/`` (``/console`` redirects there)."""

    @app.get(CONSOLE_PATH, include_in_schema=False)
    def console_root() -> RedirectResponse:
        return RedirectResponse(f"{CONSOLE_PATH}/", status_code=308)

    app.mount(f"{CONSOLE_PATH}/", _ConsoleFiles(directory=STATIC_DIR, html=True), name="console")
