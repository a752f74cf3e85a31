"""The web console's files: one HTML page, its script and style, and the vendored Chart.js.

There is no build step: the files ship in the wheel as they are, and ``fhir-cm serve`` serves them at
``/console`` (see :mod:`fhir_cm.api._console`). The page is a client of the API like any other: it
holds the caller's API key in the tab's session storage and reads everything from ``/api/v1`` and
``/fhir``, so roles and scopes apply exactly as they do to any API caller.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["STATIC_DIR"]

#: The folder of the console's files.
STATIC_DIR = Path(__file__).resolve().parent / "static"
