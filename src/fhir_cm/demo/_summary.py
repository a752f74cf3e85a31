"""Rendering the demo's summary for a person at a terminal."""

from __future__ import annotations

from ..domain import say_day
from ..outcomes import ProgrammeOutcomes
from ..sync import PullRoundReport, PushReport
from ._models import DemoSummary, ServerRoundTrip
from ._text import _n


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


def additions_line(pulled: PullRoundReport, again: PushReport | None) -> str:
    """How the tracker's additions reached the server. The pull pushes the cases given follow-ups at
    once (team members and all), so the push after it may find nothing left: "0 cases" alone would
    read as if they had not been pushed."""
    by_pull = len(pulled.follow_ups.on_server) if pulled.follow_ups is not None else 0
    rest = again.line() if again is not None else ""
    if not by_pull:
        return rest
    done = f"{_n(by_pull, 'case')} already pushed by the pull"
    return f"{done}, then {rest}" if again is not None and again.cases else done


def _server_lines(r: ServerRoundTrip) -> list[str]:
    p, t = r.pull.pull, r.pull.transitions
    found = ", ".join(f"{k} {n}" for k, n in r.found.items())
    lines = [
        f"FHIR server {r.fhir_base}",
        f"  pushed      {r.push.line()}, {r.push.provenances} provenances",
        (
            f"  pulled      {p.fetched} resources: {p.new_cases} new cases, {p.updated_cases} updated, "
            f"{p.unchanged} unchanged, {p.quarantine_text()}"
        ),
        (
            f"  tracker     {t.encounters} encounters read, {t.transitions} transitions ({t.new_transitions} new), "
            f"{t.follow_ups_added} follow-ups and {t.team_members_added} team members added"
        ),
    ]
    if r.follow_up_push is not None:
        lines.append(f"  pushed      the tracker's additions: {additions_line(r.pull, r.follow_up_push)}")
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
        f"fhir-cm demo: {len(summary.cases)} synthetic cases (seed {summary.seed}) dated up to "
        f"{summary.today}, {walked} walked through the case-management cycle now"
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
        lines.append(f"  {w.case_id}  {w.programme:<18} {w.status.value:<8} rev {w.revision:<3} {done}")
    lines += ["", f"Caseload on {summary.today} (limit {summary.caseload_limit} open cases per case manager)"]
    for m in summary.caseload:
        who = (
            "(unassigned)"
            if m.case_manager is None
            else (f"{m.case_manager_name} ({m.case_manager})" if m.case_manager_name else m.case_manager)
        )
        flag = "OVER LIMIT" if m.over_limit else "within limit"
        gap = "-" if m.max_days_since_face_to_face is None else f"{m.max_days_since_face_to_face} days"
        lines.append(f"  {who}: {_n(m.open_cases, 'open case')}, {flag}, longest since face-to-face: {gap}")
    if not summary.caseload:
        lines.append("  no open cases")
    lines += ["", f"Outcomes (all time, as of {summary.today})"]
    for o in summary.outcomes:
        lines += _outcome_lines(o)
    lines += ["", f"Transitions recorded ({len(summary.transitions)})"]
    for t in summary.transitions:
        extra = [x for x in (
            f"disposition {t.discharge_disposition.value}" if t.discharge_disposition else "",
            f"follow-up due {say_day(t.follow_up_due, t.follow_up_due_as_written)}" if t.follow_up_due else "",
            "READMISSION" if t.readmission else "",
        ) if x]  # fmt: skip
        lines.append(
            f"  {t.case_id}  {say_day(t.date, t.date_as_written)}  {t.from_setting.value} → {t.to_setting.value}"
            + (f"  ({', '.join(extra)})" if extra else "")
        )
    pending = ", ".join(f"{n} {status}" for status, n in summary.outbox.items() if n) or "empty"
    resources = ", ".join(f"{k} {n}" for k, n in summary.export_resources.items())
    lines += [
        "",
        "What it wrote, and where",
        f"  store       {summary.store_file or summary.store}",
        "              the cases, every step saved (FHIR_CM_DATABASE_URL; the API and every command read it)",
        f"  outbox      {pending}"
        # The hint only where rows wait for a push: after a sync they are done, and it said "push them".
        + (" (push them: fhir-cm push --all --fhir-base URL)" if summary.outbox.get("pending") else ""),
        f"  folder      {summary.out_dir}",
        f"  export      {summary.export_file}",
        f"              a FHIR collection Bundle, {sum(summary.export_resources.values())} resources: {resources}",
        "",
        "See them in the API (from the store's folder)",
        *(f"  {line}" for line in summary.api),
    ]
    if summary.server is not None:
        lines += ["", *_server_lines(summary.server)]
    else:
        lines += ["", "Sync them to a FHIR server: fhir-cm demo --fhir-base URL"]
    return "\n".join(lines)
