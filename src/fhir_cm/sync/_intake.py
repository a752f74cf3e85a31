"""Taking in resources read from a server: version arithmetic, and remembering them.

Shared by the pull and the transitions tracker (the checks a resource passes first are
``fhir_cm.checks``). What is taken in is remembered twice: in the ledger (server id,
versionId, last server copy — what the pusher merges onto and sends ``If-Match`` with) and in the
case's resources (the copy an export gives back).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from sqlalchemy.orm import Session

from ..config import Settings
from ..fhir import AsyncFhirClient, FhirError, UnsupportedByServer
from ..mapping import FhirVersion, ResourceKey, check_version, explicit_fhir_version
from ..store import LedgerEntry, content_hash, get_ledger, put_ledger, put_resources

__all__ = [
    "instant",
    "is_newer",
    "last_updated_of",
    "later_mark",
    "ledger_entry",
    "remember",
    "server_fhir_version",
    "version_of",
]


async def server_fhir_version(client: AsyncFhirClient, settings: Settings) -> FhirVersion:
    """The version to read the server's resources as: configured, else what ``/metadata`` says.

    A configured version the server's CapabilityStatement contradicts stops the job
    (``UnsupportedByServer``, naming both): spoken anyway, a pull read every R4 resource as R5 and
    quarantined it, exiting 0, and a push had its first write refused for an element of the other
    release. A server without a usable statement (or one naming no release) is taken at its word.
    """
    configured = explicit_fhir_version(settings.fhir_version)
    if configured is None:
        return check_version((await client.release()).value)
    try:
        caps = await client.capabilities()
    except FhirError:
        return configured
    declared = caps.release
    if declared is not None and (speaks := check_version(declared.value)) != configured:
        raise UnsupportedByServer(
            f"FHIR_CM_FHIR_VERSION is {configured}, but {client.base_url} declares FHIR {caps.fhir_version} "
            f"({declared.value}): set it to {speaks}, or to auto to follow the server"
        )
    return configured


def version_of(resource: Mapping[str, Any]) -> str | None:
    meta = resource.get("meta")
    value = meta.get("versionId") if isinstance(meta, Mapping) else None
    return value if isinstance(value, str) and value else None


def last_updated_of(resource: Mapping[str, Any]) -> str | None:
    """``meta.lastUpdated``, when it is an instant this adapter can compare (a leap second, say, is
    not: the resource is then treated as undated rather than stopping the pull)."""
    meta = resource.get("meta")
    value = meta.get("lastUpdated") if isinstance(meta, Mapping) else None
    if not isinstance(value, str) or not value:
        return None
    try:
        instant(value)
    except ValueError:
        return None
    return value


def instant(value: str) -> dt.datetime:
    """A FHIR instant (or date) as an aware datetime; a missing zone is taken as UTC."""
    parsed = dt.datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


#: How far ahead of this machine's clock a server's may run. A resource stamped later than that does
#: not move a watermark: the searches after it would ask only for what is newer and miss every change.
CLOCK_SKEW = dt.timedelta(minutes=5)


def later_mark(latest: str | None, seen: str | None, *, now: dt.datetime) -> str | None:
    """The watermark after seeing a resource last updated at ``seen`` (from ``last_updated_of``)."""
    if seen is None or instant(seen) > now + CLOCK_SKEW:
        return latest
    return seen if latest is None or instant(seen) > instant(latest) else latest


def is_newer(version: str | None, than: str | None) -> bool:
    """Whether server version ``version`` is later than ``than`` (numeric where both are; else any change)."""
    if than is None:
        return True
    if version is None:
        return False
    if version.isdigit() and than.isdigit():
        return int(version) > int(than)
    return version != than


def remember(
    session: Session,
    server_base: str,
    case_id: str,
    key: ResourceKey,
    resource: Mapping[str, Any],
    version: FhirVersion,
    *,
    only_if_newer: bool = False,
) -> bool:
    """Record ``resource`` as the server's current copy in the ledger and the case's resources.

    With ``only_if_newer`` an entry that already holds this version or a later one is left as it is
    (the pusher may have written it). Returns whether anything was recorded.
    """
    if only_if_newer:
        held = get_ledger(session, server_base, key.type, key.value)
        if held is not None and not is_newer(version_of(resource), held.version_id):
            return False
    raw = dict(resource)
    put_ledger(session, [ledger_entry(server_base, case_id, key, raw)])
    put_resources(session, case_id, [(key.value, raw)], fhir_version=version, source=server_base)
    return True


def ledger_entry(server_base: str, case_id: str, key: ResourceKey, resource: Mapping[str, Any]) -> LedgerEntry:
    """The ledger entry that records ``resource`` as the server's current copy (see :func:`remember`)."""
    raw = dict(resource)
    return LedgerEntry(
        server_base=server_base,
        resource_type=key.type,
        key=key.value,
        case_id=case_id,
        server_id=raw.get("id") if isinstance(raw.get("id"), str) else None,
        version_id=version_of(raw),
        content_hash=content_hash(raw),
        server_copy=raw,
        last_updated=last_updated_of(raw),
    )
