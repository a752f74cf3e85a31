"""Structured logs: one JSON object per line, carrying ids, routes, statuses and durations only.

Nothing here formats a request body, a query string, a name or a note: the request log is built
from the route template, the status and the principal's key id (see ``_middleware``). Extra fields
go in ``extra={"fields": {...}}``.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
from typing import Any

import orjson

__all__ = ["JsonFormatter", "configure_logging"]


class JsonFormatter(logging.Formatter):
    """Formats a record as ``{"ts", "level", "logger", "message", ...fields}`` on one line."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if isinstance(fields, dict):
            entry.update(fields)
        if record.exc_info and record.exc_info[0] is not None:
            # The exception type, not its message or traceback locals: messages may carry data.
            entry["error"] = record.exc_info[0].__name__
        return orjson.dumps(entry, default=str).decode()


def configure_logging(level: str | int = "INFO") -> None:
    """Send fhir-cm's and uvicorn's logs to stderr as JSON lines (call once, in ``serve``)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    for name in ("", "uvicorn", "uvicorn.error", "fhir_cm"):
        logger = logging.getLogger(name)
        logger.handlers[:] = [handler] if name == "" else []
        logger.propagate = name != ""
        logger.setLevel(level)
    # uvicorn's access log prints the full URL, query string (patient ids) included: never on.
    logging.getLogger("uvicorn.access").disabled = True
    # So does the HTTP client's line for each request to a FHIR server (Encounter?patient=<id>); the
    # FHIR client logs its own retries and failures as "GET Encounter", without the query.
    for name in ("httpx", "httpcore"):
        logging.getLogger(name).setLevel(logging.WARNING)
