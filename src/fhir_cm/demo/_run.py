"""Running the demo against the store: walk the journeys in, sync when a server is set, sum it up."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy.engine import make_url

from .. import decimals
from ..caseload import compute_caseload
from ..config import Settings
from ..domain import Case, CaseStatus, Stay
from ..interchange import export_cases
from ..outcomes import compute_outcomes
from ..store import (
    OutboxStatus,
    Store,
    get_case,
    get_case_record,
    get_case_records,
    list_outbox,
    list_transitions,
    open_store,
    record_transitions,
    save_case,
    transitions_as_written,
)
from ._models import CaseWalk, DemoError, DemoSummary, Progress, ServerRoundTrip
from ._pick import DEMO_SEED, pick_cases
from ._server import _check_server, _round_trip
from ._walk import walk_case

DEFAULT_CASES = 5
#: The folder the demo writes its own files into (unless told ``--out``), under the working directory.
DEMO_DIR = "fhir-cm-demo"
#: The FHIR export of the demo's cases (a collection Bundle), in that folder.
EXPORT_FILE = "export.json"


def _quiet(_line: str) -> None:
    pass


#: How far back the journeys of a demo reach from its ``today`` (about two years; with room).
JOURNEY_REACH = dt.timedelta(days=3 * 366)


def _checked_day(settings: Settings, today: dt.date | None) -> dt.date:
    """The day the journeys end on: one the store takes every date of (from the settings' earliest
    date, plus what the journeys reach back, to this machine's today plus the future tolerance)."""
    real = dt.date.today()
    if today is None:
        return real
    first = settings.earliest_date + JOURNEY_REACH
    last = real + dt.timedelta(days=settings.future_tolerance_days)
    if not first <= today <= last:
        raise DemoError(f"the demo's today must be between {first} and {last}: its journeys are dated up to it")
    return today


def run_demo(
    settings: Settings,
    *,
    cases: int = DEFAULT_CASES,
    seed: int = DEMO_SEED,
    today: dt.date | None = None,
    out_dir: Path | None = None,
    progress: Progress = _quiet,
) -> DemoSummary:
    """Walk ``cases`` journeys into the configured store, export them, and sync when a server is set.

    The journeys are dated so that they end ``today`` (the real today by default): the same seed
    always gives the same cases, ids and shape, and a newcomer following the README afterwards sees
    recent contacts, not a caseload frozen years ago. The demo's own files (the FHIR export) go into
    ``out_dir`` (``./fhir-cm-demo`` by default); the cases go into the configured store, which the
    API and the other commands read.

    With ``settings.fhir_base`` the server is asked for its CapabilityStatement first, so an
    unreachable one fails the run before anything is written. Raises :class:`DemoError` (one-line
    reason) when the server fails; store errors propagate as ``StoreError``.
    """
    today = _checked_day(settings, today)
    out_dir = out_dir or Path(DEMO_DIR)
    if settings.fhir_base:
        asyncio.run(_check_server(settings))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DemoError(f"cannot create {out_dir}: {exc.strerror or exc}") from None
    journeys = pick_cases(cases, seed, today=today)
    with open_store(settings.database_url) as store:
        walks = [_walk_or_keep(store, final, progress) for final in journeys]
        ids = [w.case_id for w in walks]
        server = asyncio.run(_round_trip(store, settings, ids, progress)) if settings.fhir_base else None
        if server is not None:  # the tracker may have added follow-ups: show the cases as they are now
            walks = [_case_walk(store, w.case_id, walked=w.walked, stages=w.stages, saves=w.saves) for w in walks]
        return _summarise(store, settings, seed, today, walks, out_dir, server)


def _walk_or_keep(store: Store, final: Case, say: Progress) -> CaseWalk:
    """Walk a journey into the store, or leave the case alone if an earlier run already put it there."""
    with store.session(read_only=True) as s:
        there = get_case(s, final.id) is not None
    if there:
        say(f"case {final.id} ({final.programme.value}): in the store from an earlier run, left as it is")
        return _case_walk(store, final.id, walked=False, stages=[], saves=0)
    say(f"case {final.id} ({final.programme.value})")
    stages: list[str] = []
    saves = 0
    recorded: list[Stay] = []
    last = None
    for step in walk_case(final):
        with store.session() as s:
            save_case(s, step.case)  # and, in the same transaction, its outbox row
            if step.case.stays != recorded:
                record_transitions(s, step.case.id, step.case.transitions)
                recorded = list(step.case.stays)
        saves += 1
        if not stages or stages[-1] != step.stage:
            stages.append(step.stage)
        say(f"  {step.stage:<12} {step.detail}")
        last = step.case
    if last != final:  # the walk is built to end at the journey; a difference is a bug in it
        raise DemoError(f"the walk of case {final.id} did not end at its journey")
    return _case_walk(store, final.id, walked=True, stages=stages, saves=saves)


def _case_walk(store: Store, case_id: str, *, walked: bool, stages: list[str], saves: int) -> CaseWalk:
    with store.session(read_only=True) as s:
        record = get_case_record(s, case_id)
    if record is None:
        raise DemoError(f"case {case_id} vanished from the store during the demo")
    case = record.case
    return CaseWalk(
        case_id=case.id,
        programme=case.programme.value,
        status=case.status,
        walked=walked,
        stages=stages,
        saves=saves,
        revision=record.revision,
        status_history=[h.status.value for h in case.status_history],
        transitions=len(case.transitions),
    )


def _store_file(url: str) -> str | None:
    """The SQLite file behind ``url`` (absolute), or None for other databases."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return str(Path(parsed.database).resolve())


def _export(store: Store, settings: Settings, ids: Sequence[str], path: Path) -> dict[str, int]:
    """Write the demo's cases as one collection Bundle to ``path``; returns resources per type."""
    entries: list[dict[str, Any]] = []
    for case_id in ids:
        entries += export_cases(store, settings, case_id=case_id).get("entry", [])
    bundle: dict[str, Any] = {"resourceType": "Bundle", "type": "collection"}
    if entries:
        bundle["entry"] = entries
    try:
        path.write_bytes(decimals.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise DemoError(f"cannot write {path}: {exc.strerror or exc}") from None
    return dict(sorted(Counter(e["resource"]["resourceType"] for e in entries).items()))


def _api_lines(settings: Settings, store_file: str | None, cases: Sequence[Case], today: dt.date) -> list[str]:
    """The commands that show the demo's cases through the API, for a shell: each one gives an answer.

    Keys are made for a case manager and a programme the demo's store holds (a key for an unknown
    practitioner or programme would see nothing, and ``apikey create`` refuses it).
    """
    base = f"http://{settings.host}:{settings.port}"
    lines = []
    if settings.database_url != Settings.model_fields["database_url"].default:
        lines.append("export FHIR_CM_DATABASE_URL=...   # the same store the demo used")
    elif store_file is not None:
        lines.append(f"cd {Path(store_file).parent}   # the store is fhir-cm.db here")
    lines += [
        "KEY=$(fhir-cm apikey create --name demo --role supervisor)   # printed once, stored hashed",
        "fhir-cm serve &   # the API; its OpenAPI document is at /docs",
        f'curl -s -H "Authorization: Bearer $KEY" {base}/api/v1/cases',
    ]
    closed = next((c for c in cases if c.status is CaseStatus.CLOSED), cases[0] if cases else None)
    if closed is not None:
        lines.append(f'curl -s -H "Authorization: Bearer $KEY" {base}/api/v1/cases/{closed.id}')
    lines += [
        f'curl -s -H "Authorization: Bearer $KEY" "{base}/api/v1/caseload?on={today}"',
        f'curl -s -H "Authorization: Bearer $KEY" -H "Accept: application/fhir+json" {base}/fhir/CarePlan',
    ]
    manager = next((c.case_manager for c in cases if c.is_open and c.case_manager is not None), None)
    if manager is not None:
        name = (manager.name or "Case manager").replace('"', "")
        lines += [
            f'CM_KEY=$(fhir-cm apikey create --name "{name}" --role case-manager --practitioner {manager.id})',
            f'curl -s -H "Authorization: Bearer $CM_KEY" {base}/api/v1/caseload   # {name}\'s own caseload',
        ]
    return lines


def _summarise(
    store: Store,
    settings: Settings,
    seed: int,
    today: dt.date,
    walks: list[CaseWalk],
    out_dir: Path,
    server: ServerRoundTrip | None,
) -> DemoSummary:
    ids = [w.case_id for w in walks]
    with store.session(read_only=True) as s:
        records = get_case_records(s, ids)
        cases = [records[i].case for i in ids if i in records]
        # Said as the hospital wrote them where a stay's end was a month ("2026-03"), not its last day.
        transitions = transitions_as_written([t for i in ids for t in list_transitions(s, i)], records)
        outbox = Counter(item.status.value for i in ids for item in list_outbox(s, case_id=i))
    export_path = out_dir / EXPORT_FILE
    exported = _export(store, settings, ids, export_path)
    store_file = _store_file(settings.database_url)
    return DemoSummary(
        seed=seed,
        today=today,
        store=make_url(settings.database_url).render_as_string(hide_password=True),
        store_file=store_file,
        cases=walks,
        caseload_limit=settings.caseload_limit,
        caseload=compute_caseload(cases, on=today, limit=settings.caseload_limit),
        outcomes=compute_outcomes(cases, start=None, end=None, today=today),
        transitions=transitions,
        outbox={s.value: outbox.get(s.value, 0) for s in OutboxStatus},
        out_dir=str(out_dir.resolve()),
        export_file=str(export_path.resolve()),
        export_resources=exported,
        api=_api_lines(settings, store_file, cases, today),
        server=server,
    )
