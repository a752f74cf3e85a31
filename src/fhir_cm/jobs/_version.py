"""Which FHIR version a job speaks: the one rule for ``FHIR_CM_FHIR_VERSION=auto``.

With a server, ``auto`` means the release its ``/metadata`` declares; without one (``map``,
``import``, ``export``) it means R4. A version asked for explicitly wins over both.
"""

from __future__ import annotations

from ..config import Settings
from ..fhir import AsyncFhirClient
from ..mapping import FhirVersion, check_version, fhir_version_without_server
from ..sync import server_fhir_version

__all__ = ["offline_fhir_version", "pick_fhir_version"]


async def pick_fhir_version(client: AsyncFhirClient, settings: Settings) -> FhirVersion:
    """The version to speak with ``client``'s server: configured, else what its ``/metadata`` says."""
    return await server_fhir_version(client, settings)


def offline_fhir_version(settings: Settings, asked: str | None = None) -> FhirVersion:
    """The version for work without a server: ``asked``, else the configured one, else R4.

    Raises ``UnsupportedVersionError`` (a ``MappingError``) for a version that is neither R4 nor R5.
    """
    return check_version(asked) if asked else fhir_version_without_server(settings.fhir_version)
