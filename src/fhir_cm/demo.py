"""``fhir-cm demo``: the main job in one command, on a fresh machine with nothing configured.

It picks a handful of synthetic case journeys (fixed seed, so the same cases every time) and walks
each through the case-management cycle the way a case manager lives it — identification from
hospital use, enrolment, assessment, the plan with (self-care) goals, referrals through their life
cycle, care-team changes, monitoring contacts, the moves between care settings with their
follow-up, evaluation and closure — saving every step to the store. Nothing is written in one go:
the status history, the revisions, the outbox and the recorded transitions are those the steps
made, exactly as if people had done the work through the API.

With a FHIR server it then pushes the cases, pulls them back with the transitions tracker, and reads
every resource back by business identifier to show the round trip lost nothing. It uses the sync
layer as the worker does: the push sends every row waiting in the store's outbox (in a store of its
own, the demo's cases), the pull whatever changed on the server under the identifier system.

Re-running is safe: the same seed gives the same case ids, and a case already in the store is left
as it is (never walked again, never duplicated; a push of it is "unchanged").
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
from pydantic import BaseModel, Field
from sqlalchemy.engine import make_url

from .caseload import ManagerCaseload, compute_caseload
from .config import Settings
from .domain import (
    CareSetting,
    Case,
    CaseStatus,
    ContactMode,
    GoalAchievement,
    GoalStatus,
    Period,
    Referral,
    ReferralStatus,
    StatusChange,
    Stay,
    StayStatus,
    TeamRole,
    move_referral,
)
from .fhir import NO_RETRY, AsyncFhirClient, FhirError, client_from_settings
from .interchange import export_cases
from .mapping import (
    MappingError,
    ResourceKey,
    case_to_resources,
    check_version,
    resources_to_case,
)
from .outcomes import ProgrammeOutcomes, compute_outcomes
from .store import (
    OutboxStatus,
    RecordedTransition,
    Store,
    enqueue,
    get_case,
    get_case_record,
    list_outbox,
    list_transitions,
    open_store,
    record_transitions,
    save_case,
)
from .sync import (
    CASE_RESOURCE_TYPES,
    PullRoundReport,
    PushReport,
    pull,
    push_pending,
    track_transitions,
)
from .synthetic import DEFAULT_TODAY, generate_cases

__all__ = [
    "DEFAULT_CASES",
    "DEMO_SEED",
    "EXPORT_FILE",
    "STAGES",
    "CaseWalk",
    "DemoError",
    "DemoSummary",
    "ServerRoundTrip",
    "WalkStep",
    "pick_cases",
    "render_summary",
    "run_demo",
    "shows_post_acute_pathway",
    "walk_case",
]

#: The seed of the demo's journeys: fixed, so every run (and every machine) walks the same cases.
DEMO_SEED = 1
DEFAULT_CASES = 5
#: The export Bundle the demo writes into the working directory.
EXPORT_FILE = "fhir-cm-demo-export.json"
#: How far into the seed's stream of journeys the demo looks for the cases that show the whole cycle.
_CANDIDATES = 500

_RS = ReferralStatus
#: How a referral walks from ``requested`` to where its journey left it, one allowed move at a time.
_REFERRAL_PATH: dict[ReferralStatus, tuple[ReferralStatus, ...]] = {
    _RS.DRAFT: (),
    _RS.REQUESTED: (),
    _RS.ACCEPTED: (_RS.ACCEPTED,),
    _RS.REJECTED: (_RS.REJECTED,),
    _RS.IN_PROGRESS: (_RS.ACCEPTED, _RS.IN_PROGRESS),
    _RS.ON_HOLD: (_RS.ACCEPTED, _RS.IN_PROGRESS, _RS.ON_HOLD),
    _RS.COMPLETED: (_RS.ACCEPTED, _RS.IN_PROGRESS, _RS.COMPLETED),
    _RS.CANCELLED: (_RS.CANCELLED,),
    _RS.FAILED: (_RS.ACCEPTED, _RS.IN_PROGRESS, _RS.FAILED),
}
_ENDED = (CaseStatus.CLOSED, CaseStatus.CANCELLED)
_POST_ACUTE = (CareSetting.SKILLED_NURSING,)
_BACK_HOME = (CareSetting.HOME, CareSetting.HOME_HEALTH)


class DemoError(Exception):
    """The demo could not do its job (the FHIR server unreachable or refusing, the store unusable)."""


# --- choosing the handful ----------------------------------------------------------------------------


def shows_post_acute_pathway(case: Case) -> bool:
    """Whether a case went hospital → skilled nursing → home (or home health) with a follow-up booked."""
    moves = case.transitions
    return any(
        a.from_setting is CareSetting.ACUTE_HOSPITAL
        and a.to_setting in _POST_ACUTE
        and b.from_setting in _POST_ACUTE
        and b.to_setting in _BACK_HOME
        and b.follow_up_due is not None
        for a, b in pairwise(moves)
    )


def pick_cases(n: int, seed: int = DEMO_SEED) -> list[Case]:
    """``n`` journeys of ``seed`` that together show the whole cycle, in the order the seed makes them.

    The first closed case with a hospital → skilled nursing → home pathway and its follow-up is always
    among them (the showcase); the others are the seed's first journeys, which mix open and closed
    cases so the caseload has something to show. The same ``n`` and seed always pick the same cases,
    and a smaller ``n`` picks a subset of a larger one's.
    """
    if n < 1:
        raise ValueError(f"the demo needs at least one case (got {n})")
    candidates: list[Case] = []
    showcase: Case | None = None
    for case in generate_cases(max(_CANDIDATES, n + 1), seed):
        candidates.append(case)
        if showcase is None and case.status is CaseStatus.CLOSED and shows_post_acute_pathway(case):
            showcase = case
        if showcase is not None and len(candidates) >= n:
            break
    chosen = [showcase] if showcase is not None else []
    chosen += [c for c in candidates if c is not showcase][: n - len(chosen)]
    order = {c.id: i for i, c in enumerate(candidates)}
    return sorted(chosen, key=lambda c: order[c.id])


# --- the walk ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WalkStep:
    """One saved step of a walk: the cycle stage, what it did in words (no PHI), and the case after it."""

    stage: str
    detail: str
    case: Case


#: The stages of the cycle, in order, as the summary names them.
STAGES = (
    "identified",
    "enrolled",
    "assessed",
    "planned",
    "referred",
    "team",
    "monitored",
    "transitions",
    "evaluated",
    "closed",
)


def _short(entity_id: str) -> str:
    return entity_id[:8]


def _n(count: int, noun: str) -> str:
    """``1 goal``, ``3 goals``: counts read as sentences."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _build(case: Case, **changes: Any) -> Case:
    """``case`` with ``changes``, validated as a whole: every step must be a valid case."""
    return Case.model_validate({**case.model_dump(), **changes})


def _in_order(final: Sequence[Any], current: Iterable[Any]) -> list[Any]:
    """The entities of ``current`` in the order ``final`` has them (so the walk ends equal to the journey)."""
    by_id = {e.id: e for e in current}
    return [by_id[e.id] for e in final if e.id in by_id]


def _as_seen_on(stay: Stay, day: dt.date) -> Stay:
    """A stay as it stood on ``day``: still running (no end, no disposition) if it ended later."""
    if stay.end is None or stay.end <= day:
        return stay
    return stay.model_copy(update={"status": StayStatus.IN_PROGRESS, "end": None, "discharge_disposition": None})


def _history(final: Case) -> list[StatusChange]:
    return list(final.status_history) or [StatusChange(status=final.status, start=final.period.start)]


def _change(case: Case, change: StatusChange) -> Case:
    moved = case.model_copy(deep=True)
    moved.change_status(change.status, change.start, change.reason)
    return moved


def _referral_rounds(finals: Sequence[Referral]) -> Iterator[tuple[str, list[Referral]]]:
    """The referrals as requested (or drafted), then after each round of moves, with what the round did."""
    paths = {r.id: _REFERRAL_PATH[r.status] for r in finals}
    current = [
        r.model_copy(update={"status": _RS.DRAFT if r.status is _RS.DRAFT else _RS.REQUESTED, "status_reason": None})
        for r in finals
    ]
    drafted = sum(r.status is _RS.DRAFT for r in current)
    yield f"{len(current) - drafted} requested" + (f", {drafted} drafted" if drafted else ""), current
    final_by_id = {r.id: r for r in finals}
    for round_no in range(max((len(p) for p in paths.values()), default=0)):
        moved: Counter[str] = Counter()
        nxt = []
        for r in current:
            path = paths[r.id]
            if round_no < len(path):
                last = round_no == len(path) - 1
                r = move_referral(r, path[round_no], final_by_id[r.id].status_reason if last else None)
                moved[r.status.value] += 1
            nxt.append(r)
        current = nxt
        yield ", ".join(f"{n} {status}" for status, n in sorted(moved.items())), current


def walk_case(final: Case) -> Iterator[WalkStep]:
    """The steps that take a new case to ``final`` through the case-management cycle, one valid case each.

    ``final`` is a complete journey (as ``fhir_cm.synthetic`` makes them); the last step yields a case
    equal to it. Every step changes the case (so each save is a new revision); stages with nothing
    to do for this case (no referrals, still open) are left out.
    """
    previous: Case | None = None
    for step in _steps(final):
        if step.case != previous:
            yield step
            previous = step.case


def _steps(final: Case) -> Iterator[WalkStep]:
    history = _history(final)
    start = final.period.start
    first_active = next((i for i, h in enumerate(history) if h.status is CaseStatus.ACTIVE), None)
    closing = len(history) - 1 if history[-1].status in _ENDED and len(history) > 1 else None
    enrolment = history[1 : (first_active + 1) if first_active is not None else (closing or len(history))]
    middle = history[1 + len(enrolment) : closing if closing is not None else len(history)]

    # 1. identification: hospital use up to the referral, and why the person qualifies.
    seen = [_as_seen_on(s, start) for s in final.stays if s.start <= start]
    case = Case(
        id=final.id,
        programme=final.programme,
        status=history[0].status,
        status_history=[history[0].model_copy(update={"end": None})],
        period=Period(start=start),
        patient=final.patient,
        referral_source=final.referral_source,
        eligibility=final.eligibility,
        acuity=final.acuity,
        stays=seen,
    )
    admissions = sum(s.setting in (CareSetting.ACUTE_HOSPITAL, CareSetting.PSYCHIATRIC) for s in seen)
    visits = sum(s.setting is CareSetting.EMERGENCY for s in seen)
    why = ", ".join(e.value for e in final.eligibility) or "-"
    yield WalkStep(
        "identified", f"{_n(admissions, 'admission')}, {_n(visits, 'ED visit')} on record; eligible: {why}", case
    )

    # 2. enrolment: referred → (waitlist) → active, a case manager takes the case on.
    for change in enrolment:
        case = _change(case, change)
    managers = [m for m in final.team if m.role is TeamRole.CASE_MANAGER]
    first_team = [m for m in final.team if m.role is TeamRole.PATIENT or (managers and m.id == managers[0].id)]
    manager = managers[0].party if managers else final.case_manager
    case = _build(case, case_manager=manager, team=[m.model_copy(update={"end": None}) for m in first_team])
    path = " → ".join(h.status.value for h in (history[0], *enrolment))
    who = f"case manager {_short(manager.id)}" if manager else "no case manager yet"
    yield WalkStep("enrolled", f"{path}; {who}", case)

    # 3. assessment: the needs found (resolved only at evaluation).
    if final.needs:
        needs = [n.model_copy(update={"resolved": None}) for n in final.needs]
        case = _build(case, needs=needs)
        domains = ", ".join(sorted({n.domain.value for n in needs}))
        yield WalkStep("assessed", f"{_n(len(needs), 'need')} ({domains})", case)

    # 4. planning: goals as agreed (outcomes come at evaluation) and the plan in words.
    if final.goals or final.plan_summary:
        goals = [
            g.model_copy(
                update={
                    "status": g.status if g.status in (GoalStatus.PROPOSED, GoalStatus.ACCEPTED) else GoalStatus.ACTIVE,
                    "achievement": None if g.achievement is None else GoalAchievement.IN_PROGRESS,
                }
            )
            for g in final.goals
        ]
        case = _build(case, goals=goals, plan_summary=final.plan_summary)
        own = sum(g.self_care for g in goals)
        yield WalkStep("planned", f"{_n(len(goals), 'goal')} ({own} self-care, set by the patient)", case)

    # 5. referrals through their life cycle (follow-ups of stays come with the transitions).
    services = [r for r in final.referrals if r.for_stay is None]
    for what, referrals in _referral_rounds(services) if services else ():
        case = _build(case, referrals=_in_order(final.referrals, referrals))
        yield WalkStep("referred", what, case)

    # 6. care-team changes: members join, some leave, the case may be handed over.
    left_early = {
        m.id: m.end for m in final.team if m.end is not None and (final.period.end is None or m.end < final.period.end)
    }
    joined = [m.model_copy(update={"end": None}) for m in final.team]
    case = _build(case, team=_in_order(final.team, joined))
    yield WalkStep("team", f"{len(final.team) - len(first_team)} joined ({len(final.team)} on the team)", case)
    if left_early or final.case_manager != case.case_manager:
        team = [m.model_copy(update={"end": left_early[m.id]}) if m.id in left_early else m for m in case.team]
        case = _build(case, team=team, case_manager=final.case_manager)
        handover = "; case handed over" if final.case_manager != manager else ""
        yield WalkStep("team", f"{len(left_early)} left{handover}", case)

    # 7. monitoring: contacts, and the case put on hold and resumed when that happened.
    case = _build(case, contacts=final.contacts)
    for change in middle:
        case = _change(case, change)
    in_person = sum(c.mode is ContactMode.FACE_TO_FACE for c in final.contacts)
    paused = f"; {' → '.join(h.status.value for h in middle)}" if middle else ""
    yield WalkStep("monitored", f"{_n(len(final.contacts), 'contact')} ({in_person} face-to-face){paused}", case)

    # 8. moves between care settings, with the follow-up booked for the discharges home.
    if case.stays != final.stays:
        case = _build(case, stays=final.stays)
        moves = _pathway(case) or "no moves since the referral"
        yield WalkStep("transitions", f"{moves}; {_n(len(case.transitions), 'transition')} in all", case)
    follow_ups = [r for r in final.referrals if r.for_stay is not None]
    for what, referrals in _referral_rounds(follow_ups) if follow_ups else ():
        services_now = [r for r in case.referrals if r.for_stay is None]
        case = _build(case, referrals=_in_order(final.referrals, [*services_now, *referrals]))
        yield WalkStep("transitions", f"follow-ups: {what}", case)

    # 9. evaluation: goal outcomes, needs resolved.
    case = _build(case, goals=final.goals, needs=final.needs)
    achieved = sum(g.achievement in (GoalAchievement.ACHIEVED, GoalAchievement.SUSTAINING) for g in final.goals)
    resolved = sum(n.resolved is not None for n in final.needs)
    yield WalkStep("evaluated", f"{achieved}/{len(final.goals)} goals attained, {resolved} needs resolved", case)

    # 10. closure: the last status, the team's memberships end with the case.
    if closing is not None:
        change = history[closing]
        case = _build(_change(case, change), team=final.team)
        yield WalkStep("closed", f"{change.status.value} on {change.start}: {change.reason or '-'}", case)


def _pathway(case: Case) -> str:
    """The care settings the person moved through since the referral (emergency visits left out)."""
    chain: list[str] = []
    for move in case.transitions:
        if move.date < case.period.start:
            continue
        for setting in (move.from_setting, move.to_setting):
            if setting is not CareSetting.EMERGENCY and (not chain or chain[-1] != setting.value):
                chain.append(setting.value)
    return " → ".join(chain)


# --- the summary -------------------------------------------------------------------------------------


class CaseWalk(BaseModel):
    """What the demo did with one case."""

    case_id: str
    programme: str
    status: CaseStatus
    walked: bool = Field(
        description="False when the case was already in the store (an earlier run) and was left as it is."
    )
    stages: list[str] = Field(description="The stages of the cycle walked, in order.")
    saves: int = Field(description="How many times the case was saved (one per step).")
    revision: int
    status_history: list[str]
    transitions: int


class ServerRoundTrip(BaseModel):
    """What the demo sent to a FHIR server and what it read back."""

    fhir_base: str
    push: PushReport
    pull: PullRoundReport
    follow_up_push: PushReport | None = Field(
        default=None, description="The push of what the transitions tracker added (follow-ups, team members)."
    )
    expected: dict[str, int] = Field(description="Resources per type the demo's cases should have on the server.")
    found: dict[str, int] = Field(description="The demo's resources found there per type (by identifier system).")
    duplicates: int
    missing: int
    matched: bool = Field(description="Every case read back from the server equals the case in the store.")
    differences: list[str] = Field(default_factory=list)


class DemoSummary(BaseModel):
    """What ``fhir-cm demo`` did and where to look: the ``--json`` output."""

    seed: int
    today: dt.date = Field(
        description="The day the synthetic journeys count as today (caseload and outcomes as of it)."
    )
    store: str
    store_file: str | None
    cases: list[CaseWalk]
    caseload_limit: int
    caseload: list[ManagerCaseload]
    outcomes: list[ProgrammeOutcomes]
    transitions: list[RecordedTransition]
    outbox: dict[str, int] = Field(description="The demo cases' outbox rows per status.")
    export_file: str
    export_resources: dict[str, int]
    api: list[str] = Field(description="Commands that show the cases through the API.")
    server: ServerRoundTrip | None = None


# --- running it --------------------------------------------------------------------------------------

Progress = Callable[[str], None]


def _quiet(_line: str) -> None:
    pass


def run_demo(
    settings: Settings,
    *,
    cases: int = DEFAULT_CASES,
    seed: int = DEMO_SEED,
    export_path: Path | None = None,
    progress: Progress = _quiet,
) -> DemoSummary:
    """Walk ``cases`` journeys into the configured store, export them, and sync when a server is set.

    With ``settings.fhir_base`` the server is asked for its CapabilityStatement first, so an
    unreachable one fails the run before anything is written. Raises :class:`DemoError` (one-line
    reason) when the server fails; store errors propagate as ``StoreError``.
    """
    export_path = export_path or Path(EXPORT_FILE)
    if settings.fhir_base:
        asyncio.run(_check_server(settings))
    journeys = pick_cases(cases, seed)
    with open_store(settings.database_url) as store:
        walks = [_walk_or_keep(store, final, progress) for final in journeys]
        ids = [w.case_id for w in walks]
        server = asyncio.run(_round_trip(store, settings, ids, progress)) if settings.fhir_base else None
        if server is not None:  # the tracker may have added follow-ups: show the cases as they are now
            walks = [_case_walk(store, w.case_id, walked=w.walked, stages=w.stages, saves=w.saves) for w in walks]
        return _summarise(store, settings, seed, walks, export_path, server)


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
        path.write_bytes(orjson.dumps(bundle, option=orjson.OPT_INDENT_2) + b"\n")
    except OSError as exc:
        raise DemoError(f"cannot write {path}: {exc.strerror or exc}") from None
    return dict(sorted(Counter(e["resource"]["resourceType"] for e in entries).items()))


def _api_lines(settings: Settings, store_file: str | None, example_case: str | None, today: dt.date) -> list[str]:
    """The commands that show the demo's cases through the API, for a shell."""
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
    if example_case is not None:
        lines.append(f'curl -s -H "Authorization: Bearer $KEY" {base}/api/v1/cases/{example_case}')
    lines += [
        f'curl -s -H "Authorization: Bearer $KEY" "{base}/api/v1/caseload?on={today}"',
        f'curl -s -H "Authorization: Bearer $KEY" -H "Accept: application/fhir+json" {base}/fhir/CarePlan',
    ]
    return lines


def _summarise(
    store: Store,
    settings: Settings,
    seed: int,
    walks: list[CaseWalk],
    export_path: Path,
    server: ServerRoundTrip | None,
) -> DemoSummary:
    ids = [w.case_id for w in walks]
    with store.session(read_only=True) as s:
        cases = [c for c in (get_case(s, i) for i in ids) if c is not None]
        transitions = [t for i in ids for t in list_transitions(s, i)]
        outbox = Counter(item.status.value for i in ids for item in list_outbox(s, case_id=i))
    exported = _export(store, settings, ids, export_path)
    store_file = _store_file(settings.database_url)
    closed = next((w.case_id for w in walks if w.status is CaseStatus.CLOSED), ids[0] if ids else None)
    return DemoSummary(
        seed=seed,
        today=DEFAULT_TODAY,
        store=make_url(settings.database_url).render_as_string(hide_password=True),
        store_file=store_file,
        cases=walks,
        caseload_limit=settings.caseload_limit,
        caseload=compute_caseload(cases, on=DEFAULT_TODAY, limit=settings.caseload_limit),
        outcomes=compute_outcomes(cases, start=None, end=None, today=DEFAULT_TODAY),
        transitions=transitions,
        outbox={s.value: outbox.get(s.value, 0) for s in OutboxStatus},
        export_file=str(export_path.resolve()),
        export_resources=exported,
        api=_api_lines(settings, store_file, closed, DEFAULT_TODAY),
        server=server,
    )


# --- the FHIR server ---------------------------------------------------------------------------------


def _client(settings: Settings) -> AsyncFhirClient:
    # sekmet (and other tolerant servers) leave Goal and CareTeam out of their CapabilityStatement
    # while serving them; like `fhir-cm pull`, the demo asks anyway rather than refusing the types.
    return client_from_settings(settings, enforce_capabilities=False)


def _reason(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


async def _check_server(settings: Settings) -> None:
    """Fail before anything is written when the server cannot be reached or speaks no FHIR we know."""
    try:
        # One try: a server that does not answer now fails the demo at once, with nothing written.
        async with client_from_settings(settings, enforce_capabilities=False, retry=NO_RETRY) as client:
            await client.release()
    except (FhirError, ValueError, OSError) as exc:
        raise DemoError(f"FHIR server {settings.fhir_base} not usable: {_reason(exc)}") from None


async def _round_trip(store: Store, settings: Settings, ids: list[str], say: Progress) -> ServerRoundTrip:
    """Push the demo's cases, pull them back with the transitions tracker, and read every resource back."""
    try:
        async with _client(settings) as client:
            with store.session() as s:
                for case_id in ids:  # queued even if unchanged: a re-run against a new server sends them too
                    enqueue(s, case_id)
            say(f"pushing to {client.base_url} …")
            pushed = await push_pending(store, client, settings)
            if pushed.failures:
                first = pushed.failures[0]
                raise DemoError(f"push failed for {len(pushed.failures)} cases (case {first.case_id}: {first.reason})")
            say(f"  pushed {pushed.line()}")
            say("pulling back and tracking transitions …")
            pulled = await pull(store, client, settings)
            tracked = await track_transitions(store, client, settings, case_ids=ids)
            say(
                f"  pulled {pulled.fetched} resources ({pulled.unchanged} unchanged); tracker: "
                f"{tracked.new_transitions} new transitions, {tracked.follow_ups_added} follow-ups and "
                f"{tracked.team_members_added} team members added"
            )
            again = None
            if tracked.changed_cases:
                again = await push_pending(store, client, settings)
                say(f"  pushed the tracker's additions: {again.line()}")
            version = (
                check_version(settings.fhir_version)
                if settings.fhir_version != "auto"
                else check_version((await client.release()).value)
            )
            with store.session(read_only=True) as s:
                cases = [c for c in (get_case(s, i) for i in ids) if c is not None]
            check = await _read_back(client, cases, version, settings.identifier_system)
    except (FhirError, OSError) as exc:
        raise DemoError(f"FHIR server {settings.fhir_base}: {_reason(exc)}") from None
    return ServerRoundTrip(
        fhir_base=settings.fhir_base or "",
        push=pushed,
        pull=PullRoundReport(pull=pulled, transitions=tracked),
        follow_up_push=again,
        **check,
    )


#: What is read back: the case's own types, and the Patient the pusher makes sure exists.
_READ_BACK_TYPES = (*CASE_RESOURCE_TYPES, "Patient")


async def _read_back(client: AsyncFhirClient, cases: list[Case], version: str, system: str) -> dict[str, Any]:
    """Find every resource of ``cases`` on the server by business identifier, and rebuild the cases from them.

    Each type is searched by ``identifier=<system>|`` and filtered here as well: tolerant servers
    ignore search parameters they do not support (sekmet does for Goal and CareTeam).
    """
    owner: dict[ResourceKey, str] = {}
    for case in cases:
        for key in case_to_resources(case, version, system):
            owner[key] = case.id
        owner[ResourceKey("Patient", case.patient.id)] = case.id
    found: dict[ResourceKey, list[dict[str, Any]]] = {}
    for rtype in _READ_BACK_TYPES:
        async for resource in client.search(rtype).where("identifier", f"{system}|").count(200):
            for ident in resource.get("identifier") or ():
                key = ResourceKey(rtype, str(ident.get("value")))
                if ident.get("system") == system and key in owner:
                    found.setdefault(key, []).append(resource)
    # The server knows each patient by an id of its own; the case knows the patient by the record
    # system's id, which the Patient carries as its business identifier.
    patients = {
        f"Patient/{copies[0]['id']}": f"Patient/{key.value}" for key, copies in found.items() if key.type == "Patient"
    }
    per_case: dict[str, list[dict[str, Any]]] = {c.id: [] for c in cases}
    for key, copies in found.items():
        if key.type != "Patient":
            per_case[owner[key]].append(_repointed(copies[0], patients))
    differences = []
    for case in cases:
        differences += _differences(case, per_case[case.id], version, system)
    missing = [k for k in owner if k not in found]
    differences += [f"{k.type} {k.value}: not on the server" for k in missing]
    return {
        "expected": dict(sorted(Counter(k.type for k in owner).items())),
        "found": dict(sorted(Counter(k.type for k, copies in found.items() for _ in copies).items())),
        "duplicates": sum(len(copies) - 1 for copies in found.values()),
        "missing": len(missing),
        "matched": not differences and all(len(copies) == 1 for copies in found.values()),
        "differences": differences,
    }


def _repointed(node: Any, mapping: dict[str, str]) -> Any:
    """A copy of ``node`` with every ``reference`` found in ``mapping`` replaced."""
    if isinstance(node, dict):
        out = {k: _repointed(v, mapping) for k, v in node.items()}
        if isinstance(out.get("reference"), str) and out["reference"] in mapping:
            out["reference"] = mapping[out["reference"]]
        return out
    if isinstance(node, list):
        return [_repointed(v, mapping) for v in node]
    return node


def _differences(case: Case, resources: list[dict[str, Any]], version: str, system: str) -> list[str]:
    """How the case the server's copies describe differs from ``case`` (top-level fields), if at all."""
    try:
        server_case = resources_to_case(resources, version, system)
    except MappingError as exc:
        return [f"case {case.id}: the server's resources do not read as a case ({_reason(exc)})"]
    mine, theirs = case.model_dump(mode="json"), server_case.model_dump(mode="json")
    fields = [name for name in mine if mine[name] != theirs.get(name)]
    return [f"case {case.id}: {', '.join(fields)} differ"] if fields else []


# --- the readable summary ----------------------------------------------------------------------------


def _pct(rate: float | None) -> str:
    return "-" if rate is None else f"{rate:.0%}"


def _days(value: float | None) -> str:
    return "-" if value is None else f"{value:g} d"


def _outcome_lines(o: ProgrammeOutcomes) -> list[str]:
    stays = ", ".join(f"{s.setting.value} {s.mean_days:g} d ({s.stays})" for s in o.length_of_stay) or "-"
    return [
        f"  {o.programme.value} ({_n(o.cases, 'case')})",
        (
            f"    30-day readmissions     {o.readmissions_30d}/{o.hospital_discharges} hospital discharges"
            f" ({_pct(o.readmission_rate)})"
        ),
        f"    length of stay (mean)   {stays}",
        f"    goal attainment         {o.goals_attained}/{o.goals_due} goals due ({_pct(o.goal_attainment_rate)})",
        f"    discharge → follow-up   median {_days(o.median_days_to_follow_up)} over {o.follow_ups} discharges"
        + (f", {o.discharges_without_follow_up} without" if o.discharges_without_follow_up else ""),
        (
            f"    referral completion     {o.referrals_completed}/{o.referrals_ended} ended referrals"
            f" ({_pct(o.referral_completion_rate)})"
        ),
    ]


def _server_lines(r: ServerRoundTrip) -> list[str]:
    p, t = r.pull.pull, r.pull.transitions
    found = ", ".join(f"{k} {n}" for k, n in r.found.items())
    lines = [
        f"FHIR server {r.fhir_base}",
        f"  pushed      {r.push.line()}, {r.push.provenances} provenances",
        (
            f"  pulled      {p.fetched} resources: {p.new_cases} new cases, {p.updated_cases} updated, "
            f"{p.unchanged} unchanged, {p.quarantined} quarantined"
        ),
        (
            f"  tracker     {t.encounters} encounters read, {t.transitions} transitions ({t.new_transitions} new), "
            f"{t.follow_ups_added} follow-ups and {t.team_members_added} team members added"
        ),
    ]
    if r.follow_up_push is not None:
        lines.append(f"  pushed      the tracker's additions: {r.follow_up_push.line()}")
    lines.append(
        f"  read back   {found} (expected {sum(r.expected.values())}, found {sum(r.found.values())}, "
        f"{r.duplicates} duplicates, {r.missing} missing)"
    )
    if r.matched:
        lines.append("  round trip  every case read back from the server equals the case in the store")
    else:
        lines.append("  round trip  DIFFERENCES between the server and the store:")
        lines += [f"    {d}" for d in r.differences]
    return lines


def render_summary(summary: DemoSummary) -> str:
    """The summary for a person at a terminal: what was done, the figures, and where to look next."""
    walked = sum(w.walked for w in summary.cases)
    lines = [
        "",
        f"fhir-cm demo: {len(summary.cases)} synthetic cases (seed {summary.seed}), "
        f"{walked} walked through the case-management cycle now"
        + (
            f", {len(summary.cases) - walked} already in the store from an earlier run"
            if walked < len(summary.cases)
            else ""
        ),
        "",
        "Cases (steps done)",
    ]
    for w in summary.cases:
        done = " → ".join(w.stages) if w.walked else "already in the store: left as it is"
        lines.append(f"  {_short(w.case_id)}  {w.programme:<18} {w.status.value:<8} rev {w.revision:<3} {done}")
    lines += ["", f"Caseload on {summary.today} (limit {summary.caseload_limit} open cases per case manager)"]
    for m in summary.caseload:
        who = _short(m.case_manager) if m.case_manager else "(unassigned)"
        flag = "OVER LIMIT" if m.over_limit else "within limit"
        gap = "-" if m.max_days_since_face_to_face is None else f"{m.max_days_since_face_to_face} days"
        lines.append(f"  {who:<12} {m.open_cases} open  {flag:<12} longest since face-to-face: {gap}")
    if not summary.caseload:
        lines.append("  no open cases")
    lines += ["", f"Outcomes (all time, as of {summary.today})"]
    for o in summary.outcomes:
        lines += _outcome_lines(o)
    lines += ["", f"Transitions recorded ({len(summary.transitions)})"]
    for t in summary.transitions:
        extra = [x for x in (
            f"disposition {t.discharge_disposition.value}" if t.discharge_disposition else "",
            f"follow-up due {t.follow_up_due}" if t.follow_up_due else "",
            "READMISSION" if t.readmission else "",
        ) if x]  # fmt: skip
        lines.append(
            f"  {_short(t.case_id)}  {t.date}  {t.from_setting.value} → {t.to_setting.value}"
            + (f"  ({', '.join(extra)})" if extra else "")
        )
    pending = ", ".join(f"{n} {status}" for status, n in summary.outbox.items() if n) or "empty"
    resources = ", ".join(f"{k} {n}" for k, n in summary.export_resources.items())
    lines += [
        "",
        "Where the FHIR resources are",
        f"  store       {summary.store_file or summary.store}",
        f"  outbox      {pending} (push them: fhir-cm push --all --fhir-base URL)",
        f"  export      {summary.export_file}",
        f"              {sum(summary.export_resources.values())} resources: {resources}",
        "",
        "See them in the API",
        *(f"  {line}" for line in summary.api),
    ]
    if summary.server is not None:
        lines += ["", *_server_lines(summary.server)]
    else:
        lines += ["", "Sync them to a FHIR server: fhir-cm demo --fhir-base URL"]
    return "\n".join(lines)
