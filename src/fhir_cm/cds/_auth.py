"""Who may call the CDS Hooks service: a JWT signed by an allow-listed EHR, addressed to us, once.

Every call (discovery, a hook, feedback) carries ``Authorization: Bearer <JWT>`` signed by the EHR
(CDS Hooks 2.0 §Trusting CDS Clients). The token is accepted only if its ``iss`` is one of
``FHIR_CM_CDS_ISSUERS`` — a JSON object from issuer to the JWKS URL its keys are fetched from (never
a ``jku`` the token names) — its signature verifies with that issuer's key ``kid`` by an asymmetric
algorithm, ``aud`` is the URL called (or the service base), ``exp`` has not passed, ``iat`` is
present and ``jti`` has not been seen before within the token's life. Anything else is
``CdsUnauthorized``: the route answers 401 before reading the body, and nothing is recorded.
Keys are cached for ``JWKS_TTL`` seconds and fetched again once when a token names an unknown
``kid`` (an EHR rotating its keys); while the JWKS cannot be read, the keys it served last still
verify for ``STALE_FOR`` seconds more, and the fetch is tried again every ``REFETCH_AFTER`` seconds,
not at every call. No token and no claim is logged.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import httpx
import jwt
from pydantic import BaseModel

from ..errors import FhirCmError
from ..fhir import safe_for_tokens

__all__ = [
    "ALGORITHMS",
    "CdsUnauthorized",
    "IssuerKeys",
    "JtiLedger",
    "VerifiedCall",
    "parse_issuers",
    "verify_call",
]

#: Asymmetric algorithms only: a shared-secret (HS*) token would let anyone holding the JWKS sign.
ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512")
JWKS_TTL = 300.0
#: The shortest time between two fetches of one issuer's keys for an unknown ``kid`` (or after a
#: fetch that failed: calls meanwhile are not each kept waiting on a JWKS that does not answer).
REFETCH_AFTER = 30.0
#: How long past ``JWKS_TTL`` the keys last read still serve while the issuer's JWKS cannot be read.
STALE_FOR = 3600.0
LEEWAY = 30
#: The longest a CDS Hooks token may live (the specification: ``exp`` at most 5 minutes ahead).
MAX_LIFETIME = 300


class CdsUnauthorized(FhirCmError):
    """The call's JWT is missing or not acceptable; the message says which check failed (no claims)."""


class VerifiedCall(BaseModel):
    """What a verified token says about its caller."""

    issuer: str
    subject: str | None = None
    jti: str


def parse_issuers(text: str | None) -> dict[str, str]:
    """``FHIR_CM_CDS_ISSUERS``: a JSON object ``{"<iss>": "<JWKS URL>", …}`` (https, or loopback http)."""
    if not text:
        return {}
    try:
        data = json.loads(text)
    except ValueError:
        raise CdsUnauthorized("FHIR_CM_CDS_ISSUERS is not a JSON object of issuer → JWKS URL") from None
    if not isinstance(data, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in data.items()):
        raise CdsUnauthorized("FHIR_CM_CDS_ISSUERS is not a JSON object of issuer → JWKS URL")
    for url in data.values():
        if not safe_for_tokens(url):
            raise CdsUnauthorized("FHIR_CM_CDS_ISSUERS: a JWKS URL must be https (or loopback http)")
    return dict(data)


class IssuerKeys:
    """The JWKS of each allow-listed issuer, fetched over verified TLS and cached."""

    def __init__(
        self, issuers: dict[str, str], *, verify: bool | str = True, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.issuers = issuers
        self._verify, self._clock = verify, clock
        self._keys: dict[str, tuple[float, dict[str, Any]]] = {}
        self._failed: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()

    def key(self, issuer: str, kid: str | None) -> Any:
        """The public key ``kid`` of ``issuer`` (the only key when the token names none)."""
        url = self.issuers.get(issuer)
        if url is None:
            raise CdsUnauthorized("the token's issuer is not allow-listed")
        with self._lock:
            fetched_at, keys = self._keys.get(issuer, (float("-inf"), {}))
            now = self._clock()
            stale = now - fetched_at > JWKS_TTL
            unknown = kid not in keys if kid else len(keys) != 1
            if stale or (unknown and now - fetched_at > REFETCH_AFTER):
                try:
                    keys = self._fresh(issuer, url, now)
                except CdsUnauthorized:
                    # The JWKS down (a restart, a 503) when the keys fell due: those it served last
                    # are the issuer's still, for a while; a key they do not hold cannot be had.
                    if unknown or now - fetched_at > JWKS_TTL + STALE_FOR:
                        raise
                else:
                    self._keys[issuer] = (now, keys)
        if kid is None:
            if len(keys) != 1:
                raise CdsUnauthorized("the token names no key (kid) and the issuer has several")
            return next(iter(keys.values()))
        found = keys.get(kid)
        if found is None:
            raise CdsUnauthorized("the token's key (kid) is not in its issuer's JWKS")
        return found

    def _fresh(self, issuer: str, url: str, now: float) -> dict[str, Any]:
        """The issuer's keys as its JWKS serves them now; a fetch that failed is not tried again for
        ``REFETCH_AFTER`` seconds (its refusal is repeated meanwhile)."""
        failed_at, why = self._failed.get(issuer, (float("-inf"), ""))
        if now - failed_at <= REFETCH_AFTER:
            raise CdsUnauthorized(why)
        try:
            keys = self._fetch(url)
        except CdsUnauthorized as exc:
            self._failed[issuer] = (now, str(exc))
            raise
        self._failed.pop(issuer, None)
        return keys

    def _fetch(self, url: str) -> dict[str, Any]:
        try:
            response = httpx.get(url, timeout=10.0, verify=self._verify, follow_redirects=False)
            response.raise_for_status()
            jwks = jwt.PyJWKSet.from_dict(response.json())
        except (httpx.HTTPError, ValueError, jwt.PyJWTError) as exc:
            raise CdsUnauthorized(f"the issuer's JWKS could not be read ({type(exc).__name__})") from None
        return {k.key_id or f"#{i}": k.key for i, k in enumerate(jwks.keys)}


class JtiLedger:
    """Token ids seen, until their tokens expire: a replayed token is refused."""

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self._seen: dict[str, float] = {}
        self._clock = clock
        self._lock = threading.Lock()

    def first_use(self, issuer: str, jti: str, expires: float) -> bool:
        now = self._clock()
        with self._lock:
            for key in [k for k, exp in self._seen.items() if exp + LEEWAY < now]:
                del self._seen[key]
            key = f"{issuer}\n{jti}"
            if key in self._seen:
                return False
            self._seen[key] = expires
            return True


def verify_call(
    authorization: str | None, audiences: Iterable[str], keys: IssuerKeys, ledger: JtiLedger
) -> VerifiedCall:
    """Verify the ``Authorization`` header of one call; raises ``CdsUnauthorized`` saying which check failed."""
    if not keys.issuers:
        raise CdsUnauthorized("CDS Hooks are off: no issuer is allow-listed (FHIR_CM_CDS_ISSUERS)")
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise CdsUnauthorized("a bearer JWT signed by the EHR is required")
    token = token.strip()
    try:
        header = jwt.get_unverified_header(token)
        issuer = jwt.decode(token, options={"verify_signature": False}).get("iss")
    except jwt.PyJWTError:
        raise CdsUnauthorized("the bearer token is not a JWT") from None
    if header.get("alg") not in ALGORITHMS:
        raise CdsUnauthorized("the token is not signed with an asymmetric algorithm")
    if not isinstance(issuer, str):
        raise CdsUnauthorized("the token names no issuer")
    key = keys.key(issuer, header.get("kid"))
    try:
        claims = jwt.decode(
            token,
            key=key,
            algorithms=list(ALGORITHMS),
            audience=list(audiences),
            issuer=issuer,
            leeway=LEEWAY,
            options={"require": ["iss", "aud", "exp", "iat", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise CdsUnauthorized("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise CdsUnauthorized("the token is addressed to another service (aud)") from None
    except jwt.InvalidSignatureError:
        raise CdsUnauthorized("the token's signature does not verify") from None
    except jwt.MissingRequiredClaimError as exc:
        raise CdsUnauthorized(f"the token lacks the {exc.claim} claim") from None
    except jwt.PyJWTError as exc:
        raise CdsUnauthorized(f"the token is not acceptable ({type(exc).__name__})") from None
    except (TypeError, ValueError):  # PyJWT's answer for an algorithm of another family than the key's
        raise CdsUnauthorized("the token's algorithm does not fit its key (kid)") from None
    jti, expires = claims["jti"], float(claims["exp"])
    if not isinstance(jti, str) or not jti.strip():
        raise CdsUnauthorized("the token's jti is empty")
    if expires > time.time() + MAX_LIFETIME + LEEWAY:
        raise CdsUnauthorized("the token lives longer than the 5 minutes CDS Hooks allows (exp)")
    if not ledger.first_use(issuer, jti, expires):
        raise CdsUnauthorized("the token was already used (jti)")
    subject = claims.get("sub")
    return VerifiedCall(issuer=issuer, subject=subject if isinstance(subject, str) else None, jti=jti)
