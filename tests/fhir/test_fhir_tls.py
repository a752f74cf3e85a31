"""TLS: verification on by default, with one context per process for the default trust store."""

from __future__ import annotations

import ssl

import certifi

from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.fhir._boundary import tls_context


def pool_context(client: AsyncFhirClient) -> object:
    return client._http._transport._pool._ssl_context  # type: ignore[attr-defined]


async def test_clients_share_one_verifying_context_for_the_default_trust_store() -> None:
    async with AsyncFhirClient("https://a.example/fhir") as a, AsyncFhirClient("https://b.example/fhir") as b:
        shared = pool_context(a)
        assert shared is pool_context(b) is tls_context()
    assert isinstance(shared, ssl.SSLContext)
    assert shared.verify_mode == ssl.CERT_REQUIRED and shared.check_hostname


def test_a_ca_bundle_is_read_each_time_and_verification_off_stays_off() -> None:
    first, second = tls_context(certifi.where()), tls_context(certifi.where())
    assert isinstance(first, ssl.SSLContext) and first is not second
    assert first.verify_mode == ssl.CERT_REQUIRED and first.check_hostname
    assert tls_context(False) is False
