"""Identify: screen a server's population for case management, and enrol the candidates chosen."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Sequence
from pathlib import Path

from sqlalchemy.orm import Session

from ..config import Settings
from ..errors import FhirCmError
from ..domain import ProgrammeType
from ..fhir import BulkSettings
from ..identify import EnrolReport, ScreeningReport, enrol_candidates, screen_files, screen_population
from ..store import Store
from ._clients import pull_client, require_fhir_base

__all__ = ["enrol", "run_identify", "run_identify_files"]


async def run_identify(
    store: Store,
    settings: Settings,
    *,
    group: str | None = None,
    since: str | None = None,
    full: bool = False,
    use_export: bool | None = None,
    as_of: dt.date | None = None,
    bulk_settings: BulkSettings | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ScreeningReport:
    """Screen the server's population (or one Group) and rank the candidates; incremental unless
    ``full`` or ``since``. Reads with the pull client: servers leave types they serve out of their
    CapabilityStatement. Raises ``NoFhirServer`` without a server."""
    require_fhir_base(settings)
    bulk_settings = bulk_settings or BulkSettings(
        kick_off=settings.bulk_kick_off,
        join_types=settings.bulk_join_types,
        max_retry_after=settings.bulk_max_retry_after,
        max_wait=settings.bulk_max_wait,
    )
    async with pull_client(settings) as client:
        return await screen_population(
            store,
            client,
            group=group,
            since=since,
            full=full,
            use_export=use_export,
            as_of=as_of,
            bulk_settings=bulk_settings,
            on_progress=on_progress,
        )


async def run_identify_files(
    store: Store,
    settings: Settings,
    paths: Sequence[Path],
    *,
    as_of: dt.date | None = None,
    on_progress: Callable[[str], None] | None = None,
) -> ScreeningReport:
    """Screen an export of the configured server delivered as NDJSON files (a path may be a directory:
    its ``*.ndjson`` files, by name). The facts are kept under that server, so its candidates, enrolment
    and later incremental runs are the same as for an export read over HTTP."""
    server = require_fhir_base(settings)
    files: list[Path] = []
    for path in paths:
        files += sorted(path.glob("*.ndjson")) if path.is_dir() else [path]
    missing = [str(f) for f in files if not f.is_file()]
    if missing or not files:
        raise NdjsonFilesMissing(f"no NDJSON file to read: {', '.join(missing) or 'the directories hold no *.ndjson'}")
    return await screen_files(store, server, files, as_of=as_of, on_progress=on_progress)


class NdjsonFilesMissing(FhirCmError):
    """The NDJSON files named do not exist (or a directory holds none)."""


def enrol(
    store: Store,
    settings: Settings,
    *,
    patient_ids: Sequence[str] = (),
    top: int = 0,
    programme: ProgrammeType = ProgrammeType.HEALTH_CARE,
    as_of: dt.date | None = None,
    then: Callable[[Session, EnrolReport], None] | None = None,
    among: Collection[str] | None = None,
) -> EnrolReport:
    """Turn chosen candidates of the configured server's last screening into referred cases (the
    ``top`` among these patients only: a Group's run's members); ``then`` runs in the transaction
    that saves them (an audit record, say)."""
    server = require_fhir_base(settings)
    return enrol_candidates(
        store, server, patient_ids=patient_ids, top=top, programme=programme, as_of=as_of, then=then, among=among
    )
