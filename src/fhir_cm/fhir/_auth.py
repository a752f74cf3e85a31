"""Authentication as ``httpx.Auth`` flows: none, bearer, basic and SMART Backend Services.

SMART Backend Services (client_credentials + ``private_key_jwt``) is how a system without a user
talks to a hospital EHR. The token is fetched through the auth flow itself — so it uses the same
transport, proxies and test mocks as the FHIR requests — kept in a :class:`TokenCache` (the one of
the process for clients built from settings), refreshed shortly before it expires, and refreshed
once more when the server answers 401 anyway (a token revoked or expired mid-paging); the refused
request is then sent again once with the new token.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
import uuid
from collections.abc import AsyncGenerator, Callable, Generator
from dataclasses import dataclass
from typing import Any, Literal

import httpx
import jwt

from cryptography.hazmat.primitives import serialization

from ._keys import SigningKey, load_signing_key
from ._scopes import left_out
from ._errors import PURPOSE, InvalidResponse, TransientError, Unauthorized, redact
from ._tokens import Flight, TokenCache, TokenKey
from ._urls import normalize_base, safe_for_tokens, shown_origin

__all__ = ["ASSERTION_TYPE", "BearerAuth", "SmartBackendAuth", "header_token"]

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
ASSERTION_LIFETIME = 240  # seconds; SMART allows at most 300
DEFAULT_LIFETIME = 300.0  # seconds a token is taken to last when the token endpoint does not say
_FORM = "application/x-www-form-urlencoded"

log = logging.getLogger("fhir_cm.fhir")


def header_token(token: str) -> str:
    """``token`` as it may follow ``Bearer ``: without the spaces or line end an env file or a secret
    mounted as a file leaves around it, and refused (``ValueError``, never quoting it) when it still
    holds a space or control character.

    Sent as it was, a trailing newline made every request fail as a "network error" (the HTTP library
    refuses the header) that was retried as transient for ever, its message quoting the token.
    """
    stripped = token.strip()
    if not stripped:
        raise ValueError("the bearer token is empty")
    if any(not "\x21" <= char <= "\x7e" for char in stripped):
        raise ValueError("the bearer token holds a space, a line break or a character outside ASCII")
    return stripped


class BearerAuth(httpx.Auth):
    """A static bearer token (e.g. issued out of band); the token never appears in ``repr``."""

    def __init__(self, token: str) -> None:
        self._header = f"Bearer {header_token(token)}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def __repr__(self) -> str:
        return "BearerAuth(token=***)"


@dataclass(frozen=True)
class _Fetched:
    value: str
    lifetime: float  # seconds


class SmartBackendAuth(httpx.Auth):
    """SMART Backend Services: a client assertion signed RS384/ES384 exchanged for an access token.

    ``token_url`` may be left out: it is discovered from ``[base]/.well-known/smart-configuration``,
    or failing that from the CapabilityStatement's ``oauth-uris`` extension. Tokens and discovered
    endpoints are kept in ``cache``: the auths sharing one ask for a token once while it is valid.
    Without one, the auth keeps its own (on ``clock``).
    """

    def __init__(
        self,
        *,
        client_id: str,
        private_key: str | bytes,
        fhir_base: str,
        algorithm: Literal["RS384", "ES384"] = "RS384",
        key_password: bytes | None = None,
        key_id: str | None = None,
        token_url: str | None = None,
        scope: str = "system/*.read system/*.write",
        refresh_margin: float = 60.0,
        clock: Callable[[], float] = time.time,
        allow_http: bool = False,
        cache: TokenCache | None = None,
    ) -> None:
        if algorithm not in ("RS384", "ES384"):
            raise ValueError("SMART Backend Services signs with RS384 or ES384")
        pem = private_key.encode() if isinstance(private_key, str) else private_key
        self._key = load_signing_key(pem, algorithm, password=key_password)  # refused now, not at the first request
        self.client_id = client_id
        self.algorithm = algorithm
        self.key_id = key_id
        self.token_url = token_url
        self._allow_http = allow_http
        self.scope = scope
        self.refresh_margin = refresh_margin
        self._base = normalize_base(fhir_base)
        self._clock = clock
        self._cache = cache if cache is not None else TokenCache(clock)
        self._key_ref = TokenKey(
            token_url or f"discovered from {self._base}", client_id, scope, key_id, _fingerprint(self._key)
        )
        self._granted: str | None = None  # the scope of the last token response, warned of when narrower

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, algorithm={self.algorithm!r})"

    # -- the assertion ----------------------------------------------------------------------------

    def client_assertion(self, token_url: str) -> str:
        """A fresh signed JWT: iss = sub = client_id, aud = token endpoint, exp ≤ 5 min, unique jti."""
        now = int(self._clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": token_url,
            "iat": now,
            "exp": now + ASSERTION_LIFETIME,
            "jti": uuid.uuid4().hex,
        }
        headers = {"typ": "JWT", **({"kid": self.key_id} if self.key_id else {})}
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)

    # -- the flow ---------------------------------------------------------------------------------

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        refused: str | None = None
        for _ in range(2):  # the request, and once more after a 401 with a fresh token
            token = self._cache.claim(self._key_ref, refused)  # none, expiring, or the one just refused
            while isinstance(token, Flight):
                if not token.leader:  # another client (any thread or loop) is fetching it: wait for it
                    token = await token.landed() or self._cache.claim(self._key_ref, refused)
                    continue
                flight, flow = token, self._fetch_token(request.extensions.get("timeout"))
                try:
                    step = _advance(flow, None)
                    while isinstance(step, httpx.Request):
                        response = yield step
                        await response.aread()
                        step = _advance(flow, response)
                except BaseException as exc:  # the waiters get the token endpoint's answer, or ask again
                    self._cache.abandon(flight, exc if isinstance(exc, Exception) else None)
                    raise
                margin = min(self.refresh_margin, step.lifetime / 2)  # short-lived tokens still get used
                self._cache.land(flight, step.value, step.lifetime, margin)
                token = step.value
            request.headers["Authorization"] = f"Bearer {token}"
            response = yield request
            if response.status_code != 401:
                return
            refused = token

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        raise RuntimeError("SmartBackendAuth is async-only; use it with httpx.AsyncClient")

    def _fetch_token(self, timeout: object) -> Generator[httpx.Request, httpx.Response, _Fetched]:
        """Sub-flow: discover the token endpoint if needed, then exchange an assertion for a token.

        Its requests take the ``timeout`` of the request they are made for: built here rather than by
        the client, they had none, and a token endpoint that took the connection and never answered
        held the worker for ever."""
        token_url = self.token_url or (
            yield from self._discover(_sent_for(timeout, "discovering the SMART token endpoint"))
        )
        purpose = f"at the SMART token endpoint ({shown_origin(token_url)})"
        response = yield httpx.Request(
            "POST",
            token_url,
            data={
                "grant_type": "client_credentials",
                "scope": self.scope,
                "client_assertion_type": ASSERTION_TYPE,
                "client_assertion": self.client_assertion(token_url),
            },
            headers={"Accept": "application/json", "Content-Type": _FORM},
            extensions=_sent_for(timeout, purpose),
        )
        body = _json(response)
        if _unavailable(response):
            raise TransientError(
                f"token endpoint unavailable (HTTP {response.status_code})", status=response.status_code
            )
        token = body.get("access_token")
        if response.status_code != 200 or not isinstance(token, str):
            if self.token_url is None:  # the endpoint discovered gave no token: discover it again next time
                self._cache.forget_endpoint(self._base)
            raise Unauthorized(_refusal(self.client_id, response, body), status=response.status_code)
        try:
            token = header_token(token)
        except ValueError as exc:
            raise InvalidResponse(f"the token endpoint answered an access token that cannot be sent: {exc}") from None
        self._check_granted(body.get("scope"))
        return _Fetched(token, _lifetime(body.get("expires_in")))

    def _check_granted(self, granted: object) -> None:
        """Warn (once per grant) when the token covers less than ``scope`` asked: what it leaves out
        comes back as 403s that rarely say why (writes refused to a client registered to read)."""
        if not isinstance(granted, str) or granted == self._granted:
            return
        self._granted = granted
        missing = left_out(self.scope, granted)
        if missing:
            log.warning(
                "the token endpoint granted client %r %r, not %s asked for (FHIR_CM_SCOPE): requests needing"
                " it will be refused (403); see the client's registration",
                self.client_id,
                granted,
                " ".join(missing),
            )

    def _discover(self, extensions: dict[str, object]) -> Generator[httpx.Request, httpx.Response, str]:
        """The token endpoint the server names; refused unless https (or http to this machine), since the
        assertion and the token it buys would cross the network in clear."""
        endpoint = self._cache.endpoint(self._base)  # discovered once per process for all its clients
        if endpoint is None:
            endpoint = yield from self._named_endpoint(extensions)
            self._cache.remember_endpoint(self._base, endpoint)
        if not (self._allow_http or safe_for_tokens(endpoint)):
            raise Unauthorized(
                "the SMART token endpoint the server names is not https; set FHIR_CM_TOKEN_URL"
                " (or FHIR_CM_ALLOW_HTTP_CREDENTIALS=true on a private network you vouch for)"
            )
        return endpoint

    def _named_endpoint(self, extensions: dict[str, object]) -> Generator[httpx.Request, httpx.Response, str]:
        response = yield httpx.Request(
            "GET",
            f"{self._base}/.well-known/smart-configuration",
            headers={"Accept": "application/json"},
            extensions=extensions,
        )
        endpoint = _json(response).get("token_endpoint") if response.status_code == 200 else None
        if isinstance(endpoint, str) and endpoint:
            return endpoint
        unavailable = _unavailable(response)
        response = yield httpx.Request(
            "GET", f"{self._base}/metadata", headers={"Accept": "application/fhir+json"}, extensions=extensions
        )
        endpoint = _token_from_capabilities(_json(response)) if response.status_code == 200 else None
        if endpoint:
            return endpoint
        unavailable = unavailable or _unavailable(response)
        if unavailable:  # a server restarting or shedding load names nothing: that is no setting to correct
            raise TransientError(
                f"SMART token endpoint not discovered: the FHIR server is unavailable (HTTP {unavailable})",
                status=unavailable,
            )
        raise Unauthorized("no SMART token endpoint: neither .well-known/smart-configuration nor /metadata names one")


def _sent_for(timeout: object, purpose: str) -> dict[str, object]:
    """The extensions of a request the flow sends: the client's timeout, and what it is for."""
    return {PURPOSE: purpose} if timeout is None else {"timeout": timeout, PURPOSE: purpose}


def _advance(
    flow: Generator[httpx.Request, httpx.Response, _Fetched], response: httpx.Response | None
) -> httpx.Request | _Fetched:
    """One step of a sync sub-flow inside the async flow (async generators cannot ``yield from``):
    the next request it sends, or what it returned."""
    try:
        return next(flow) if response is None else flow.send(response)
    except StopIteration as done:
        return done.value  # type: ignore[no-any-return]


def _fingerprint(key: SigningKey) -> str:
    """A short SHA-256 of the public half of ``key``: names it in a :class:`TokenKey`, revealing nothing."""
    public = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return hashlib.sha256(public).hexdigest()[:16]


def _refusal(client_id: str, response: httpx.Response, body: dict[str, Any]) -> str:
    """Why the token endpoint gave no token: the OAuth ``error`` and its description when it sent one.

    Without one (a 200 login page of a proxy, a 404 page: the URL is not the token endpoint) it read
    "refused client 'x': HTTP 200", as if the client were refused."""
    error, detail = body.get("error"), body.get("error_description")
    if isinstance(error, str) and error.strip():
        told = f" ({redact(str(detail))})" if detail else ""
        return f"token endpoint refused client {client_id!r}: {redact(error, 80)}{told}"
    kind = response.headers.get("content-type", "no content type").split(";")[0].strip()
    if response.status_code == 200:
        said = "answered 200 without an access_token"
    else:
        said = f"refused client {client_id!r} with HTTP {response.status_code} and no OAuth error"
    return f"token endpoint {said} ({kind}): is FHIR_CM_TOKEN_URL (or the one discovered) the token endpoint?"


def _lifetime(expires_in: object) -> float:
    """The token's lifetime in seconds: ``expires_in`` when it is a positive number (or its text), else
    ``DEFAULT_LIFETIME``. A word there failed the request with a ValueError out of the auth flow; an
    infinite or NaN one had the token never refreshed before it expired (a 401 at every expiry)."""
    try:
        seconds = float(expires_in)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return DEFAULT_LIFETIME
    return seconds if math.isfinite(seconds) and seconds > 0 else DEFAULT_LIFETIME


def _unavailable(response: httpx.Response) -> int | None:
    """The status of an answer saying "not now" (429, 5xx), else None."""
    status = response.status_code
    return status if status == 429 or status >= 500 else None


def _json(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _token_from_capabilities(statement: dict[str, Any]) -> str | None:
    for rest in statement.get("rest") or []:
        for ext in ((rest.get("security") or {}).get("extension")) or []:
            if ext.get("url") != OAUTH_URIS:
                continue
            for sub in ext.get("extension") or []:
                if sub.get("url") == "token" and sub.get("valueUri"):
                    return str(sub["valueUri"])
    return None
