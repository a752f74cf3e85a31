"""Settings from the environment (``FHIR_CM_*``), one object passed down explicitly.

Secrets (tokens, passwords, private keys) are read from the environment or files only, never from
the command line, so they do not end up in shell history or process listings.
"""

from __future__ import annotations

import datetime as dt
from urllib.parse import urlsplit
from typing import TYPE_CHECKING, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import FhirCmError

if TYPE_CHECKING:
    from .domain import Plausibility

__all__ = ["Settings", "SettingsError", "get_settings"]

DEFAULT_IDENTIFIER_SYSTEM = "urn:fhir-cm:id"


#: Settings that may be left unset: an empty value is the same as none.
_OPTIONAL_TEXT = (
    "fhir_base", "token", "username", "password", "client_id", "private_key_file",
    "private_key_password", "key_id", "token_url",
    "cds_issuers", "public_url",
)  # fmt: skip
#: Names, paths and URLs: the spaces or line end an env file leaves around them are no part of them.
_TRIMMED = (
    "fhir_base", "username", "client_id", "private_key_file", "key_id", "token_url",
    "database_url", "identifier_system", "host",
)  # fmt: skip
#: Settings that always have a value: an empty one is refused.
_REQUIRED_TEXT = ("database_url", "identifier_system", "host", "scope")


class Settings(BaseSettings):
    """Everything fhir-cm can be configured with. Field ``x`` is read from ``FHIR_CM_X``."""

    model_config = SettingsConfigDict(env_prefix="FHIR_CM_", extra="ignore")

    database_url: str = Field(
        default="sqlite:///fhir-cm.db",
        description="SQLAlchemy URL of the store: SQLite file by default, postgresql+psycopg://… to scale out.",
    )
    fhir_base: str | None = Field(default=None, description="Base URL of the FHIR server to sync with.")
    fhir_version: Literal["auto", "R4", "R5"] = Field(
        default="auto", description="FHIR version of the server; 'auto' reads /metadata."
    )
    identifier_system: str = Field(
        default=DEFAULT_IDENTIFIER_SYSTEM,
        description="System of the business identifiers stamped on every resource the adapter creates.",
    )
    # --- FHIR server auth -------------------------------------------------------------------------
    auth: Literal["none", "bearer", "basic", "smart"] = "none"
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    client_id: str | None = None
    private_key_file: str | None = None
    private_key_alg: Literal["RS384", "ES384"] = "RS384"
    private_key_password: SecretStr | None = Field(
        default=None, description="The passphrase of an encrypted FHIR_CM_PRIVATE_KEY_FILE (unset: not encrypted)."
    )
    key_id: str | None = None
    token_url: str | None = None
    scope: str = "system/*.read system/*.write"
    verify_tls: bool = True
    allow_http_credentials: bool = Field(
        default=False,
        description="Send FHIR credentials over plain http to another machine (a private network the "
        "operator vouches for); off: refused, https only.",
    )
    timeout: float = Field(default=30.0, gt=0, description="Seconds a request to the FHIR server may take.")
    # --- push (fhir_cm.sync) ----------------------------------------------------------------------
    push_concurrency: int = Field(default=4, ge=1, description="Cases pushed at the same time.")
    push_batch_size: int = Field(
        default=50, ge=1, description="Outbox rows claimed at once (at most: a push's claims grow to it from a wave)."
    )
    push_lease_seconds: float = Field(
        default=60.0, gt=0, description="How long a claim holds an outbox row before other workers may take it."
    )
    push_provenance: bool = Field(default=True, description="Write a Provenance with every pushed change.")
    max_transaction_entries: int | None = Field(
        default=None,
        ge=0,
        description="Most entries per transaction on the server (0: no transactions); unset: learnt from refusals.",
    )
    # --- Bulk Data $export (fhir-cm identify): what servers differ on -----------------------------
    bulk_kick_off: Literal["GET", "POST"] = Field(
        default="GET", description="How the server takes a $export kick-off (Bulk Data STU4 servers: POST)."
    )
    bulk_join_types: bool = Field(
        default=True, description="_type=A,B (true) or _type=A&_type=B (false, e.g. Oracle Health)."
    )
    bulk_max_retry_after: float = Field(
        default=60.0, gt=0, description="The longest Retry-After honoured while polling an export, in seconds."
    )
    bulk_max_wait: float = Field(default=3600.0, gt=0, description="Give up on an export that takes longer (seconds).")
    # --- CDS Hooks (fhir_cm.cds) --------------------------------------------------------------------
    cds_issuers: str | None = Field(
        default=None,
        description='Allow-listed EHRs: a JSON object {"<iss>": "<JWKS URL>"}; unset, every CDS Hooks call is refused.',
    )
    public_url: str | None = Field(
        default=None,
        description="The URL clients reach fhir-cm at (behind a proxy): the CDS JWT audience and card links.",
    )
    cds_deadline: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Seconds a CDS Hooks call may spend reading the EHR's FHIR server (what it did not prefetch): "
        "every query and retry together; past it the data not read counts as not had.",
    )
    # --- API --------------------------------------------------------------------------------------
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    max_body_bytes: int = Field(
        default=16 * 2**20,
        ge=1024,
        description="The largest request body the API reads (413 beyond it, before reading the rest).",
    )
    shutdown_grace: float = Field(
        default=25.0,
        gt=0,
        le=3600,
        description="Seconds `serve`, told to stop, lets the requests under way finish before it cancels them.",
    )
    caseload_limit: int = Field(default=20, ge=0, description="Active cases per case manager above which to warn.")
    case_cache: int = Field(
        default=10_000,
        ge=0,
        le=1_000_000,
        description=(
            "How many decoded cases each API process keeps for its read routes (about 40 kB each, so at most"
            " 400 MB by default, beside the FHIR facade's ~240 kB per case; 0: none)."
        ),
    )
    # --- what the domain accepts as true (fhir_cm.domain.Plausibility) -------------------------------
    future_tolerance_days: int = Field(
        default=1, ge=0, le=366,
        description="How many days after today a record of something done (a contact, a stay) may be dated.",
    )  # fmt: skip
    earliest_date: dt.date = Field(default=dt.date(1900, 1, 1), description="No date of a case may be earlier.")
    horizon_years: int = Field(
        default=10, ge=0, le=100, description="How many years ahead a due date or a planned stay may be set."
    )

    @field_validator(*_OPTIONAL_TEXT, mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """``FHIR_CM_TOKEN_URL=`` (as compose files and templates leave a variable) means not set.

        Kept as "", a token would be sent as ``Bearer `` and a token URL of "" be posted to.
        """
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator(*_TRIMMED, mode="after")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        """``FHIR_CM_TOKEN_URL`` ending in a newline failed every token request with an ``InvalidURL``
        out of the auth flow; ``FHIR_CM_CLIENT_ID`` so, with the server's "unknown client";
        ``FHIR_CM_DATABASE_URL`` ending in a space opened a new, empty store in ``fhir-cm.db `` beside
        the real one, and ``FHIR_CM_IDENTIFIER_SYSTEM`` so stamped a system no copy on a server has."""
        return value.strip() if value is not None else None

    @field_validator(*_REQUIRED_TEXT, mode="before")
    @classmethod
    def _empty_is_refused(cls, value: object) -> object:
        """An empty value where one is needed is refused rather than guessed at: ``FHIR_CM_HOST=`` bound
        every interface (the socket's reading of ""), ``FHIR_CM_IDENTIFIER_SYSTEM=`` stamped identifiers
        with no system."""
        if isinstance(value, str) and not value.strip():
            raise PydanticCustomError("empty", "is empty: give a value, or unset it for the default")
        return value

    @field_validator("public_url")
    @classmethod
    def _public_url_absolute(cls, value: str | None) -> str | None:
        """The URL clients reach fhir-cm at is an origin (and path) they can call: without a scheme, or
        with a query, every CDS Hooks token's audience was refused (401) and every card link broken."""
        if value is None:
            return None
        try:
            parts = urlsplit(value.strip())
            parts.port  # noqa: B018 - raises ValueError for a port out of range
        except ValueError:
            parts = urlsplit("")
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
            raise PydanticCustomError("url", "must be an http(s) URL such as https://cm.example.org (no query)")
        return value.strip()

    def plausibility(self, today: dt.date) -> Plausibility:
        """The domain's rules of what can be true, as of ``today``, with this deployment's tolerances."""
        from .domain import Plausibility

        return Plausibility(
            today=today,
            future_tolerance_days=self.future_tolerance_days,
            earliest=self.earliest_date,
            horizon_years=self.horizon_years,
        )


class SettingsError(FhirCmError, ValueError):
    """A setting (an ``FHIR_CM_*`` variable or the option over it) has a value it cannot take."""


def get_settings(**overrides: object) -> Settings:
    """Settings from the environment, with explicit overrides (e.g. from CLI options) on top.

    Raises ``SettingsError`` naming each variable whose value is refused (never the value: a
    variable may hold a secret).
    """
    try:
        settings = Settings(**{k: v for k, v in overrides.items() if v is not None})  # type: ignore[arg-type]
    except ValidationError as exc:
        said = "; ".join(
            f"FHIR_CM_{'_'.join(str(p) for p in e['loc'][:1]).upper()}: {e['msg']}" for e in exc.errors()[:3]
        )
        raise SettingsError(said) from None
    if _in_memory(settings.database_url):
        raise SettingsError("FHIR_CM_DATABASE_URL names no file: what a command stored would be gone when it ends")
    return settings


def _in_memory(url: str) -> bool:
    """Whether a database URL names an in-memory SQLite database (no file)."""
    scheme, _, rest = url.partition("://")
    path, _, query = rest.partition("?")
    return scheme.split("+")[0] == "sqlite" and (path in ("", "/", "/:memory:") or "mode=memory" in query)
