"""Build a client (and its authentication) from :class:`fhir_cm.config.Settings`.

Secrets come from the settings object only (environment or files); they are passed straight to
the auth objects and never logged or echoed in errors.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from ..config import Settings, SettingsError
from ._auth import BearerAuth, SmartBackendAuth
from ._client import AsyncFhirClient
from ._sync import FhirClient
from ._tokens import SHARED_TOKENS
from ._urls import normalize_base, safe_for_tokens

__all__ = ["auth_from_settings", "check_fhir_settings", "client_from_settings", "sync_client_from_settings"]

#: Credentials (a token, a password, a SMART assertion and the token it buys) cross the network only
#: encrypted: an ``http://`` URL to another machine is refused, whatever FHIR_CM_VERIFY_TLS says,
#: unless the operator says the network is private (FHIR_CM_ALLOW_HTTP_CREDENTIALS=true: a server
#: reached inside a cluster or a VPN that does its own encryption).
_IN_CLEAR = (
    "FHIR_CM_AUTH would send its credentials unencrypted: {what} must be https "
    "(http only to this machine: localhost, 127.0.0.1, ::1; on a private network you vouch for, "
    "set FHIR_CM_ALLOW_HTTP_CREDENTIALS=true)"
)


def auth_from_settings(settings: Settings) -> httpx.Auth | None:
    """The ``httpx.Auth`` for ``settings.auth``; ``SettingsError`` (a ``ValueError``) names a missing or
    unusable setting, never a secret."""
    kind = settings.auth
    if kind == "none":
        return None
    if kind == "bearer":
        if settings.token is None:
            raise SettingsError("auth=bearer needs FHIR_CM_TOKEN")
        try:
            return BearerAuth(settings.token.get_secret_value())
        except ValueError as exc:
            raise SettingsError(f"FHIR_CM_TOKEN: {exc}") from None
    if kind == "basic":
        if not settings.username or settings.password is None:
            raise SettingsError("auth=basic needs FHIR_CM_USERNAME and FHIR_CM_PASSWORD")
        if ":" in settings.username:  # RFC 7617: the server would split the name at it
            raise SettingsError("FHIR_CM_USERNAME cannot hold ':' (basic auth separates the password with it)")
        return httpx.BasicAuth(settings.username, settings.password.get_secret_value())
    if not settings.client_id or not settings.private_key_file:
        raise SettingsError("auth=smart needs FHIR_CM_CLIENT_ID and FHIR_CM_PRIVATE_KEY_FILE")
    if not settings.fhir_base:
        raise SettingsError("auth=smart needs FHIR_CM_FHIR_BASE (to discover the token endpoint)")
    if settings.token_url is not None and not _may_carry_credentials(settings, settings.token_url):
        raise SettingsError(_IN_CLEAR.format(what="FHIR_CM_TOKEN_URL"))
    password = settings.private_key_password
    try:
        pem = Path(settings.private_key_file).read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise SettingsError(
            f"FHIR_CM_PRIVATE_KEY_FILE ({settings.private_key_file}) cannot be read: {reason}"
        ) from None
    try:
        return SmartBackendAuth(
            client_id=settings.client_id,
            private_key=pem,
            fhir_base=settings.fhir_base,
            algorithm=settings.private_key_alg,
            key_password=password.get_secret_value().encode() if password is not None else None,
            key_id=settings.key_id,
            token_url=settings.token_url,
            scope=settings.scope,
            allow_http=settings.allow_http_credentials,
            cache=SHARED_TOKENS,  # one token (and discovery) per process while valid, not one per client
        )
    except ValueError as exc:
        raise SettingsError(f"FHIR_CM_PRIVATE_KEY_FILE ({settings.private_key_file}): {exc}") from None


def check_fhir_settings(settings: Settings) -> None:
    """Refuse now (``SettingsError``) what would fail every request to the configured FHIR server: a
    long-running command (``serve``) checks at start, not at the first sync a supervisor asks for."""
    if settings.fhir_base:
        _client_kwargs(settings, {})


def _may_carry_credentials(settings: Settings, url: str) -> bool:
    return settings.allow_http_credentials or safe_for_tokens(url)


def _client_kwargs(settings: Settings, overrides: dict[str, Any]) -> dict[str, Any]:
    if not settings.fhir_base:
        raise SettingsError("no FHIR base URL: pass --fhir-base or set FHIR_CM_FHIR_BASE")
    if settings.auth != "none" and not _may_carry_credentials(settings, normalize_base(settings.fhir_base)):
        raise SettingsError(_IN_CLEAR.format(what="FHIR_CM_FHIR_BASE"))
    kwargs: dict[str, Any] = {
        "auth": auth_from_settings(settings),
        "timeout": settings.timeout,
        "verify": settings.verify_tls,
        "fhir_version": settings.fhir_version,
        "max_transaction_entries": settings.max_transaction_entries,
        "allow_http_credentials": settings.allow_http_credentials,
    }
    kwargs.update(overrides)  # e.g. a test's transport; timeout/verify only shape a client we create
    return kwargs


def client_from_settings(settings: Settings, **overrides: Any) -> AsyncFhirClient:
    """An :class:`AsyncFhirClient` for ``settings.fhir_base`` with the configured auth and timeouts."""
    return AsyncFhirClient(settings.fhir_base or "", **_client_kwargs(settings, overrides))


def sync_client_from_settings(settings: Settings, **overrides: Any) -> FhirClient:
    """The blocking :class:`FhirClient` equivalent of :func:`client_from_settings`."""
    return FhirClient(settings.fhir_base or "", **_client_kwargs(settings, overrides))
