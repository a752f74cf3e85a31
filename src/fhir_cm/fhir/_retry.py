"""When to send a request again, and how long to wait first.

Public FHIR servers are often briefly down (HAPI's 502/504, gateways' 429), so reads and
idempotent writes are retried with exponential back-off and jitter, honouring ``Retry-After``.
A request is repeated only when repeating it cannot create a second resource or overwrite a
newer version: reads, conditional creates (``If-None-Exist``), conditional updates, versioned
writes (``If-Match``) and bundles whose entries are all of those. A plain ``POST`` is never
re-sent after it may have reached the server — a duplicate CarePlan is worse than an error.
A connection that was never established is different: the request did not leave, so it is safe.
So is a 429 answer, to any request: the server (or its gateway) refused it before doing anything,
so sending it again after ``Retry-After`` cannot apply it twice — a 503 promises no such thing.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

__all__ = [
    "DEFAULT_RETRY",
    "NOT_APPLIED_STATUSES",
    "NO_RETRY",
    "RETRY_STATUSES",
    "RetryPolicy",
    "is_safe_to_repeat",
    "parse_retry_after",
]

RETRY_STATUSES = frozenset({429, 502, 503, 504})
#: Statuses that say the request was refused before anything was done: safe to re-send anything.
NOT_APPLIED_STATUSES = frozenset({429})
# Failures raised before any byte of the request was written: safe to re-send anything.
NOT_SENT_ERRORS: tuple[type[Exception], ...] = (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded retries: at most ``max_attempts`` sends and ``max_wait`` seconds of waiting in total."""

    max_attempts: int = 4
    backoff_base: float = 0.5
    backoff_max: float = 20.0
    max_wait: float = 60.0
    statuses: frozenset[int] = RETRY_STATUSES
    not_applied: frozenset[int] = NOT_APPLIED_STATUSES  # of ``statuses``: retried even for a plain POST
    rng: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def backoff(self, attempt: int) -> float:
        """Wait before attempt ``attempt + 1``: exponential, capped, jittered to half…all of it."""
        delay = min(self.backoff_max, self.backoff_base * 2 ** (attempt - 1))
        return float(delay / 2 + self.rng() * delay / 2)

    def delay(self, attempt: int, retry_after: float | None) -> float:
        """The server's ``Retry-After`` when it gave one, otherwise the back-off for ``attempt``."""
        return max(0.0, retry_after) if retry_after is not None else self.backoff(attempt)


DEFAULT_RETRY = RetryPolicy()
NO_RETRY = RetryPolicy(max_attempts=1)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date; None if absent/bad."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():  # str.isdigit alone takes "²", which float() does not
        return float(value)
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def http_date(value: str | None) -> str | None:
    """An HTTP date (``Date: Sun, 06 Dec 2026 04:00:00 GMT``) as an ISO 8601 instant in UTC; None if
    absent or unreadable."""
    if not value:
        return None
    try:
        when = parsedate_to_datetime(value.strip())
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.astimezone(UTC).isoformat()


def is_safe_to_repeat(request: httpx.Request) -> bool:
    """True when sending ``request`` twice leaves the server as sending it once would."""
    method = request.method.upper()
    if method in {"GET", "HEAD"}:
        return True
    if method == "POST":
        return bool(request.headers.get("if-none-exist"))
    if method in {"PUT", "PATCH"}:
        # versioned (If-Match) or conditional (PUT [type]?identifier=…)
        return bool(request.headers.get("if-match")) or (method == "PUT" and bool(request.url.query))
    return False
