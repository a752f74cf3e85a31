"""The issuers' keys: fetched from each allow-listed JWKS URL, cached, fetched again on a key unknown
— and kept while the issuer's JWKS cannot be read for a while, as real endpoints sometimes cannot."""

from __future__ import annotations

import json
from collections.abc import Iterator

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from fhir_cm.cds import CdsUnauthorized, IssuerKeys
from fhir_cm.cds._auth import JWKS_TTL, REFETCH_AFTER, STALE_FOR

from .conftest import serve_jwks

ISSUER = "https://ehr.example.org"


class Jwks:
    """An issuer's JWKS endpoint on loopback, which can be made to fail (503) and counts its reads."""

    def __init__(self) -> None:
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
        self.body = json.dumps({"keys": [{**jwk, "kid": "rsa-1", "alg": "RS384", "use": "sig"}]}).encode()
        self.down = False
        self.reads = 0


@pytest.fixture
def jwks() -> Iterator[tuple[Jwks, str]]:
    state = Jwks()

    def answer() -> tuple[int, bytes]:
        state.reads += 1
        return (503, b"{}") if state.down else (200, state.body)

    with serve_jwks(answer) as url:
        yield state, url


def test_the_keys_are_kept_while_the_issuers_jwks_cannot_be_read(jwks: tuple[Jwks, str]) -> None:
    """The JWKS answering 503 when the cached keys fell due: every call was refused (401) for as
    long, each waiting on a fetch of its own; the keys last read serve, the fetch is tried again
    now and then, and not for ever."""
    state, url = jwks
    now = [0.0]
    keys = IssuerKeys({ISSUER: url}, clock=lambda: now[0])
    first = keys.key(ISSUER, "rsa-1")
    state.down = True
    now[0] = JWKS_TTL + 1
    assert keys.key(ISSUER, "rsa-1") == first
    assert keys.key(ISSUER, "rsa-1") == first
    assert state.reads == 2  # tried once when due, not again at the next call
    now[0] += REFETCH_AFTER + 1
    assert keys.key(ISSUER, "rsa-1") == first and state.reads == 3
    # A key never seen cannot be had from a JWKS that cannot be read.
    with pytest.raises(CdsUnauthorized, match="could not be read"):
        keys.key(ISSUER, "rsa-2")
    # Back up: read again when due.
    state.down = False
    now[0] += JWKS_TTL + 1
    assert keys.key(ISSUER, "rsa-1") == first and state.reads == 4
    # Down longer than the keys may be kept: refused.
    state.down = True
    now[0] += JWKS_TTL + STALE_FOR + 1
    with pytest.raises(CdsUnauthorized, match="could not be read"):
        keys.key(ISSUER, "rsa-1")
