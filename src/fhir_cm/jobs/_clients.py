"""The one place that chooses the FHIR client a job uses.

* The **push** client enforces the server's CapabilityStatement: a write the server does not declare
  is refused before it is sent.
* The **pull** client does not: servers leave types out of the statement that they serve (sekmet
  omits Goal and CareTeam), and a pull that skipped them would lose case data. The pull still sends
  only the search parameters the statement declares, and filters the results itself.
"""

from __future__ import annotations

from ..config import Settings
from ..fhir import AsyncFhirClient, client_from_settings
from ..errors import FhirCmError

__all__ = ["NoFhirServer", "pull_client", "push_client", "require_fhir_base"]


class NoFhirServer(FhirCmError, ValueError):
    """A job that talks to a FHIR server was asked for with none configured."""


def require_fhir_base(settings: Settings) -> str:
    """The configured FHIR base URL, or :class:`NoFhirServer`."""
    if not settings.fhir_base:
        raise NoFhirServer("no FHIR base URL: pass --fhir-base or set FHIR_CM_FHIR_BASE")
    return settings.fhir_base


def push_client(settings: Settings) -> AsyncFhirClient:
    """The client a push writes with (enforces the CapabilityStatement)."""
    require_fhir_base(settings)
    return client_from_settings(settings)


def pull_client(settings: Settings) -> AsyncFhirClient:
    """The client a pull (and the transitions tracker) reads with (does not enforce the statement)."""
    require_fhir_base(settings)
    return client_from_settings(settings, enforce_capabilities=False)
