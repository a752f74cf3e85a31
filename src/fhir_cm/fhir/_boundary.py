"""The client's boundary with HTTP: one pooled ``httpx.AsyncClient``, one error boundary, safe retries.

Every request goes through :meth:`FhirBoundary._send`, the single place where HTTP failures
become ``FhirError``s and where a failed request may be sent again (see ``_retry``). The
``httpx.AsyncClient`` can be handed in — with a mock, ASGI or real transport — so tests and the
API share one code path with production. What the client asks of a FHIR server (reads, writes,
bundles) is ``AsyncFhirClient``'s, in ``_client``; this holds the state it sends with (the base,
the retry policy, what it learnt of the server's limits) and the raw exchanges Bulk Data needs.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import ssl
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from types import TracebackType
from typing import Any, Self

import httpx
import orjson

from .. import decimals
from .. import __version__
from ._capabilities import Capabilities, release_from_version
from ._errors import (
    InvalidResponse,
    RequestInfo,
    TransientError,
    error_from_response,
    map_transport_errors,
    redirected,
)
from ._limits import TransactionLimit
from ._retry import DEFAULT_RETRY, NOT_SENT_ERRORS, RetryPolicy, is_safe_to_repeat, parse_retry_after
from ._search import DEFAULT_MAX_PAGES
from ._urls import may_carry_credentials, normalize_base, shown_origin

__all__ = ["FHIR_JSON", "USER_AGENT", "FhirBoundary", "tls_context", "unbound"]

log = logging.getLogger("fhir_cm.fhir")

FHIR_JSON = "application/fhir+json"
USER_AGENT = f"fhir-cm/{__version__}"


def tls_context(verify: bool | str = True) -> ssl.SSLContext | bool:
    """The TLS context of a client made with ``verify``: for the default trust store (True), one
    built once per process and shared. Building one reads the whole CA bundle (about 20 ms), which a
    process making a client per job (``serve``, the worker's rounds) paid each time, on the path of
    each job's first request. A CA bundle's path is read each time (it may be replaced while the
    process runs); ``False`` (verification off, asked for explicitly) stays ``False``."""
    if verify is True:
        return _default_tls_context()
    if verify is False:
        return False
    if os.path.isdir(verify):
        return ssl.create_default_context(capath=verify)
    return ssl.create_default_context(cafile=verify)


@functools.cache
def _default_tls_context() -> ssl.SSLContext:
    return httpx.create_ssl_context(verify=True)


class FhirBoundary:
    """The connection pool, retries and error mapping of a client for one server base, and what it
    learnt of that server (its limits, a ``Retry-After`` not waited out). See ``AsyncFhirClient``."""

    def __init__(
        self,
        base_url: str,
        *,
        http: httpx.AsyncClient | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        auth: httpx.Auth | None = None,
        timeout: float | httpx.Timeout = 30.0,
        verify: bool | str = True,
        retry: RetryPolicy = DEFAULT_RETRY,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], float] = time.monotonic,
        capabilities: Capabilities | None = None,
        fhir_version: str = "auto",
        enforce_capabilities: bool = True,
        max_pages: int = DEFAULT_MAX_PAGES,
        prefer: str = "return=representation",
        max_transaction_entries: int | None = None,
        allow_http_credentials: bool = False,
    ) -> None:
        self._base = normalize_base(base_url)
        if http is not None and transport is not None:
            raise ValueError("pass either http or transport, not both")
        self._owns_http = http is None
        self._http = http or httpx.AsyncClient(
            transport=transport,
            timeout=timeout
            if isinstance(timeout, httpx.Timeout)
            else httpx.Timeout(timeout, connect=min(timeout, 10.0)),
            verify=tls_context(verify) if transport is None else verify,
            limits=httpx.Limits(max_connections=20, max_keepalive_connections=10),
            follow_redirects=False,
        )
        self._auth = auth
        self._allow_http = allow_http_credentials
        self._retry = retry
        self._sleep = sleep
        self._clock = clock
        self._capabilities = capabilities
        self._release = (
            None
            if fhir_version == "auto"
            else release_from_version({"R4": "4.0.1", "R4B": "4.3.0", "R5": "5.0.0"}.get(fhir_version, fhir_version))
        )
        self._enforce = enforce_capabilities
        self._max_pages = max_pages
        self._prefer = prefer
        self._transaction_limit = max_transaction_entries
        self._learnt_limit: TransactionLimit | None = None
        self._refuses_batches = False
        self._wait_until: float | None = None  # on ``clock``: the end of a Retry-After not waited out

    # -- lifecycle --------------------------------------------------------------------------------

    async def aclose(self) -> None:
        """Close the connection pool if this client created it."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    # -- properties used by searches and bundles ----------------------------------------------------

    @property
    def base_url(self) -> str:
        return self._base

    @property
    def known_capabilities(self) -> Capabilities | None:
        """The capabilities requests are checked against: None until loaded or when not enforced."""
        return self._capabilities if self._enforce else None

    @property
    def retry_policy(self) -> RetryPolicy:
        return self._retry

    async def sleep(self, seconds: float) -> None:
        await self._sleep(seconds)

    def asked_to_wait(self) -> float | None:
        """Seconds still to wait by the latest ``Retry-After`` (on a 429, 502, 503 or 504) that the
        client's retries gave up on, longer than its policy waits; None when there is none or it
        has passed. Callers that keep work for later (the push's outbox) make it due no sooner:
        lookups that swallow errors (a batch read) leave the wait known here all the same."""
        if self._wait_until is None:
            return None
        left = self._wait_until - self._clock()
        return left if left > 0 else None

    # -- transaction size ---------------------------------------------------------------------------

    @property
    def transaction_limit(self) -> int | None:
        """The most entries one transaction may hold here (None: no limit known; 0: no transactions)."""
        return self._transaction_limit

    @property
    def learnt_transaction_limit(self) -> TransactionLimit | None:
        """The lowest lasting limit refusals taught this client (about the number of entries or the
        bundle kind, not a bare 413), with the server's reason: what is worth remembering for later runs."""
        return self._learnt_limit

    def limit_transactions(self, max_entries: int | None) -> None:
        """Set the limit from outside: configured by hand, or remembered from an earlier run."""
        if max_entries is not None and max_entries < 0:
            raise ValueError("a transaction limit is 0 (no transactions) or more")
        self._transaction_limit = max_entries

    def learn_transaction_limit(self, limit: TransactionLimit | None) -> None:
        """Lower the limit after a refusal; it holds for every later transaction of this client."""
        if limit is None:
            return
        if self._transaction_limit is None or limit.max_entries < self._transaction_limit:
            self._transaction_limit = limit.max_entries
            log.warning(
                "the server refused a transaction (%s): at most %d entries from now on", limit.reason, limit.max_entries
            )
        if limit.lasting and (self._learnt_limit is None or limit.max_entries < self._learnt_limit.max_entries):
            self._learnt_limit = limit

    @property
    def refuses_batches(self) -> bool:
        """Whether the server refused a batch Bundle this run: later batches go as single requests."""
        return self._refuses_batches

    def refuse_batches(self) -> None:
        """Remember that the server takes no batch, so the rest of the run does not ask again."""
        if not self._refuses_batches:
            log.warning("the server refused a batch: its entries go as single requests from now on")
        self._refuses_batches = True

    # -- raw exchanges (Bulk Data: kick-off, status polling, NDJSON files) ---------------------------

    def build_raw(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        json: Any = None,
    ) -> httpx.Request:
        """A request to ``url`` (the server's, or one it named) with the client's usual headers; a
        ``json`` body is FHIR JSON (a Parameters), and says so: servers read a body by its type."""
        if json is not None:
            headers = {"Content-Type": FHIR_JSON, **(headers or {})}
        return self._request(method, url, params=params, headers=headers, json=json)

    async def send_raw(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        params: Sequence[tuple[str, str]] | None = None,
        json: Any = None,
    ) -> httpx.Response:
        """Send with the client's retries and error mapping: a 2xx response, or the ``FhirError``."""
        return await self._send(self.build_raw(method, url, headers=headers, params=params, json=json))

    async def send_once(self, request: httpx.Request) -> httpx.Response:
        """Send once, with the client's credentials, and return whatever status came back (body read);
        for exchanges whose statuses are the protocol (a Bulk status URL's 202s and 429s)."""
        info = RequestInfo.from_request(request, self._base)
        with map_transport_errors(info, request):
            response = await self._http.send(request, auth=self._credentials(request) or httpx.USE_CLIENT_DEFAULT)
            await response.aread()
        return unbound(response)

    @asynccontextmanager
    async def stream_file(self, url: str, *, authenticated: bool) -> AsyncIterator[httpx.Response]:
        """A streamed GET of a file the server named (Bulk NDJSON); the credentials go only when
        ``authenticated`` (the manifest's ``requiresAccessToken``). An error status raises its ``FhirError``.

        Redirects are followed here, unlike anywhere else: cloud servers answer a file's URL with a
        redirect to a signed storage URL, and a GET of a file carries no body to resend. The
        credentials go no further than the origin they were meant for (httpx drops them on a redirect
        to another). Taken as the answer, the empty 3xx read as an empty file: the export looked
        complete, short of every resource in it. One left unfollowed (no Location) is an error."""
        request = self._request("GET", url, headers={"Accept": "application/fhir+ndjson"})
        info = RequestInfo.from_request(request, self._base)
        with map_transport_errors(info, request):
            response = await self._http.send(
                request, auth=self._credentials(request) if authenticated else None, stream=True, follow_redirects=True
            )
        try:
            if response.is_redirect or 300 <= response.status_code < 400:
                raise redirected(response, info)
            if response.status_code >= 400:
                await response.aread()
                raise error_from_response(response, self._base)
            yield response
        finally:
            await response.aclose()
            unbound(response)

    def _credentials(self, request: httpx.Request) -> httpx.Auth | None:
        """The auth for ``request``; ``InvalidResponse`` when it goes in clear to another machine."""
        if self._auth is None or may_carry_credentials(request.url, self._base, allow_http=self._allow_http):
            return self._auth
        raise InvalidResponse(
            f"{request.method} {shown_origin(request.url)}: the server names a URL in clear on another machine "
            f"than {shown_origin(self._base)} (its address behind a proxy?); the credentials are not sent there"
        )

    # -- the boundary -----------------------------------------------------------------------------

    def _request(
        self,
        method: str,
        url: str,
        *,
        params: Sequence[tuple[str, str]] | None = None,
        headers: Mapping[str, str] | None = None,
        json: Any = None,
        content: bytes | None = None,
    ) -> httpx.Request:
        body = decimals.dumps(json) if json is not None else content
        return self._http.build_request(
            method,
            url,
            params=list(params) if params else None,
            headers={"Accept": FHIR_JSON, "User-Agent": USER_AGENT, **(headers or {})},
            content=body,
        )

    async def _send(self, request: httpx.Request, *, safe: bool | None = None) -> httpx.Response:
        """Send with retries where safe; return a 2xx response or raise the mapped ``FhirError`` (a
        redirect included: see ``redirected``)."""
        info = RequestInfo.from_request(request, self._base)
        repeatable = is_safe_to_repeat(request) if safe is None else safe
        policy = self._retry
        deadline = self._clock() + policy.max_wait
        attempt = 0
        while True:
            attempt += 1
            try:
                with map_transport_errors(info, request):
                    response = unbound(
                        await self._http.send(request, auth=self._credentials(request) or httpx.USE_CLIENT_DEFAULT)
                    )
            except TransientError as exc:
                not_sent = isinstance(exc.__cause__, NOT_SENT_ERRORS)
                delay = policy.delay(attempt, None)
                if (repeatable or not_sent) and self._may_retry(attempt, delay, deadline):
                    log.warning("%s: %s; retrying in %.1fs", info.describe(), type(exc.__cause__).__name__, delay)
                    await self._sleep(delay)
                    continue
                raise
            log.debug("%s → %s", info.describe(), response.status_code)
            if response.status_code < 300:
                return response
            if response.status_code < 400:
                raise redirected(response, info)
            retry_after = parse_retry_after(response.headers.get("retry-after"))
            refused_first = response.status_code in policy.not_applied  # 429: nothing was done
            if response.status_code in policy.statuses and (repeatable or refused_first):
                delay = policy.delay(attempt, retry_after)
                if self._may_retry(attempt, delay, deadline):
                    log.warning("%s → %s; retrying in %.1fs", info.describe(), response.status_code, delay)
                    await self._sleep(delay)
                    continue
            if retry_after and response.status_code in policy.statuses:
                until = self._clock() + retry_after
                self._wait_until = max(until, self._wait_until or until)
            raise error_from_response(response, self._base, retry_after=retry_after)

    def _may_retry(self, attempt: int, delay: float, deadline: float) -> bool:
        return attempt < self._retry.max_attempts and self._clock() + delay <= deadline

    def _json(self, response: httpx.Response) -> Any:
        """The body as JSON, None when empty; ``InvalidResponse`` when it is something else."""
        if not response.content.strip():
            return None
        try:
            return decimals.loads(response.content)
        except orjson.JSONDecodeError as exc:
            kind = response.headers.get("content-type", "no content type")
            raise InvalidResponse(
                f"{response.request.method} answered {response.status_code} with non-JSON ({kind})",
                summary=f"the server answered {response.status_code} with something not JSON ({kind[:60]})",
            ) from exc

    def _resource(self, response: httpx.Response, resource_type: str | None = None) -> dict[str, Any]:
        """The resource a response carries (of ``resource_type``, when the request named one: a 200
        OperationOutcome in place of the resource read is no resource)."""
        body = self._json(response)
        if not isinstance(body, dict) or not isinstance(body.get("resourceType"), str):
            raise InvalidResponse(f"{response.request.method} {response.request.url.path} returned no resource")
        if resource_type is not None and body["resourceType"] != resource_type:
            raise InvalidResponse(
                f"{response.request.method} {response.request.url.path} returned a {body['resourceType']}"
            )
        return body


#: What a read and closed response streams from: nothing (its body is in ``content``).
_SPENT = httpx.ByteStream(b"")


def unbound(response: httpx.Response) -> httpx.Response:
    """``response``, no longer in a reference cycle with its stream once closed.

    httpx 0.28 wraps each response's stream in one that points back at the response (to set
    ``elapsed`` on close: encode/httpx#3733). The cycle kept every read response, body included,
    alive until the cycle collector's next pass over its generation rather than until its last
    reference went: in a pull, pages of 100–400 KB piled up between passes, more of them the longer
    the pull, and each pass had them to traverse. A closed stream has nothing left to give, so it
    is swapped for an empty one; ``content``, ``elapsed`` and the rest are untouched.
    """
    if response.is_closed:
        response.stream = _SPENT
    return response
