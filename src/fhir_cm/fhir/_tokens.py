"""The SMART access tokens (and discovered token endpoints) of one process, shared by its clients.

Each FHIR client used to fetch its own token: ``serve`` builds one per push, pull or placement, the
worker its own, so a busy process asked the token endpoint for a token per request, and hospital
token endpoints (Epic and others) rate-limit them. Every client built from the same settings now
takes the token from here while it is valid.

The API runs sync jobs in worker threads with event loops of their own, and asyncio locks do not
cross loops: the cache is guarded by a ``threading.Lock``, held only for dictionary work (never
across a request), and a token request under way is a ``concurrent.futures.Future`` the other
clients await from their own loops, so one request per key is in flight whatever the thread or
loop, and no event loop is blocked while it runs. A flight whose leader never reports (its event
loop closed without closing it) is taken over after ``flight_limit`` seconds rather than holding
every client of the process for ever.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

__all__ = ["SHARED_TOKENS", "Flight", "TokenCache", "TokenKey"]

FLIGHT_LIMIT = 300.0  # seconds: far beyond the timeouts of a discovery and a token request


@dataclass(frozen=True)
class TokenKey:
    """What a token is good for. It holds no secret, so it may be logged: the key is named by its id
    and by a fingerprint of its *public* half (two keys under one id never share a token)."""

    token_endpoint: str  # the configured URL, or "discovered from <base>"
    client_id: str
    scope: str
    key_id: str | None
    public_key: str  # SHA-256 of the public key, shortened


@dataclass(frozen=True)
class Flight:
    """A token request under way for ``key``: its ``leader`` sends it; the others await it."""

    key: TokenKey
    leader: bool
    outcome: concurrent.futures.Future[str | None]
    started: float  # time.monotonic()
    limit: float  # seconds after which the flight is taken for lost

    async def landed(self) -> str | None:
        """The token the leader fetched; ``None`` when the leader gave up (cancelled, its client
        closed) or never reported, so the waiter asks again; the leader's error when the token
        endpoint failed it."""
        left = self.started + self.limit - time.monotonic()
        try:  # shield: a waiter cancelled must not cancel the request the others wait for
            return await asyncio.wait_for(asyncio.shield(asyncio.wrap_future(self.outcome)), max(left, 0))
        except TimeoutError:
            return None


@dataclass
class _Token:
    value: str = field(repr=False)  # a secret: never in a repr that could reach a log
    refresh_at: float  # on the cache's clock: a little before the token expires


class TokenCache:
    """Tokens by :class:`TokenKey`, refreshed shortly before they expire or once refused (401)."""

    def __init__(self, clock: Callable[[], float] = time.time, *, flight_limit: float = FLIGHT_LIMIT) -> None:
        self.clock = clock
        self.flight_limit = flight_limit
        self._lock = threading.Lock()
        self._tokens: dict[TokenKey, _Token] = {}
        self._flights: dict[TokenKey, Flight] = {}
        self._endpoints: dict[str, str] = {}  # FHIR base -> the token endpoint it names

    def claim(self, key: TokenKey, refused: str | None = None) -> str | Flight:
        """A valid token for ``key`` other than ``refused`` (the one a server just answered 401 to),
        else the token request to lead or to wait for."""
        with self._lock:
            token = self._tokens.get(key)
            if token is not None and token.value == refused:
                del self._tokens[key]  # refused: the next request fetches anew, once
            elif token is not None and self.clock() < token.refresh_at:
                return token.value
            flight = self._flights.get(key)
            if flight is not None and time.monotonic() < flight.started + flight.limit:
                return Flight(key, False, flight.outcome, flight.started, flight.limit)
            outcome: concurrent.futures.Future[str | None] = concurrent.futures.Future()
            outcome.set_running_or_notify_cancel()  # a running future cannot be cancelled by a waiter
            flight = self._flights[key] = Flight(key, True, outcome, time.monotonic(), self.flight_limit)
            return flight

    def land(self, flight: Flight, value: str, lifetime: float, margin: float) -> None:
        """Keep the token ``flight`` fetched, to be refreshed ``margin`` seconds before ``lifetime`` ends."""
        with self._lock:
            self._tokens[flight.key] = _Token(value, self.clock() + lifetime - margin)
            self._end(flight)
        flight.outcome.set_result(value)

    def abandon(self, flight: Flight, error: Exception | None) -> None:
        """End ``flight`` without a token: its waiters get ``error`` (the token endpoint's answer), or
        ask again themselves when there is none (the leader was cancelled)."""
        with self._lock:
            self._end(flight)
        if error is None:
            flight.outcome.set_result(None)
        else:
            flight.outcome.set_exception(error)

    def _end(self, flight: Flight) -> None:
        """Forget ``flight`` unless another took over from it (it ran past its limit)."""
        current = self._flights.get(flight.key)
        if current is not None and current.outcome is flight.outcome:
            del self._flights[flight.key]

    def endpoint(self, base: str) -> str | None:
        """The token endpoint discovered for the FHIR server at ``base``."""
        with self._lock:
            return self._endpoints.get(base)

    def remember_endpoint(self, base: str, endpoint: str) -> None:
        with self._lock:
            self._endpoints[base] = endpoint

    def forget_endpoint(self, base: str) -> None:
        """Discover again next time: the endpoint named gave no token (it moved, or never was one)."""
        with self._lock:
            self._endpoints.pop(base, None)

    def clear(self) -> None:
        """Forget every token and endpoint (flights under way still land)."""
        with self._lock:
            self._tokens.clear()
            self._endpoints.clear()


#: The cache of every client :func:`fhir_cm.fhir.client_from_settings` builds in this process.
SHARED_TOKENS = TokenCache()
