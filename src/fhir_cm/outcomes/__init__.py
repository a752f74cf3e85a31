"""Outcome figures of a case-management programme over a period, computed from cases alone.

What the field measures: 30-day readmissions, length of stay, goal attainment, time
from hospital discharge to follow-up, and here also how many referrals end in the service being
delivered. Each figure counts the events whose own date falls in the period (both ends included).

A stay is the **case's** when it ends within the case's period, or at most ``look_back_days`` before
it starts (``mappings/outcome-rules.json``, 30: the discharge a referral to case management follows
within days). Stays ending earlier are the patient's history before enrolment, those ending after a
closure are no longer the programme's; a readmission is still looked for among all the stays.

* **Readmissions** — index events are the case's finished acute-hospital stays that ended in the
  period, except those ending in death (disposition ``exp``), in a transfer to another acute hospital (the
  domain's ``transferred``: one episode of care, as CMS counts it), or while another acute-hospital
  stay begun before went on past them (not a discharge), or ending before the case began when
  another acute-hospital stay began before it too (the admission the referral came from: that
  readmission happened before the programme could act). One is readmitted when another acute-hospital
  stay of the **patient** starts 0–30 days after it ended (the domain's ``READMISSION_WINDOW_DAYS``),
  even if that second stay starts after the period, and whichever of the patient's cases holds it —
  the measure counts by patient: discharged at the end of one case and admitted again into the next
  is a readmission, counted once, for the programme and period of the index discharge. Another case's
  stay counts as that case stood on ``today`` (not one begun later, nor one entered in error), unless
  it is the index stay recorded there too (same start and end) or where the index stay transferred the
  person. Whichever of the patient's cases records the hospital a stay transferred the person to, or
  the admission between an earlier discharge and the case's start, the stay is no index discharge.
  Rate = readmitted / index discharges.
* **Length of stay** — the case's finished stays that ended in the period, per care setting: days from start
  to end (a same-day stay is 0 days); mean and median.
* **Goal attainment** — goals due in the period and no later than ``today`` (a goal cannot have
  failed before it is due), leaving out goals proposed, rejected or cancelled. Attained = achievement
  ``achieved`` or ``sustaining``. Goals without a due date have no deadline to be judged against and
  are not counted.
* **Discharge to follow-up** — for the same index discharges, days to the first monitoring contact
  (any mode) on or after the discharge day; discharges with none are counted apart, not as zero.
* **Referral completion** — referrals authored in the period (drafts left out). Rate = completed /
  referrals that reached an end (completed, failed, cancelled, rejected): open ones are undecided.

``cases`` counts those in case management some day of the period, as their status history tells
(not one closed throughout it and reopened later). Cases ``entered-in-error`` are left out altogether. Rates and averages are ``None`` when nothing
was there to measure, never a misleading 0.

The figures are "as of" ``today``: every case counts as it stood that day (``case_as_of``: stays
and contacts up to it, a stay still running if it ended later, a case not yet begun left out), so
figures for a past day are those that could have been computed on it.
"""

from __future__ import annotations

from ._case import IndexDischarge, OutcomeParts, OutcomeTimeline, outcome_parts, outcome_timeline
from ._combine import (
    Admission,
    ProgrammeOutcomes,
    SettingStays,
    combine_outcomes,
    compute_outcomes,
    patients_to_follow,
    programme_outcomes,
    readmission_stays,
)
from ._rules import RULES_FILE, OutcomeRules, load_outcome_rules

__all__ = [
    "RULES_FILE",
    "Admission",
    "IndexDischarge",
    "OutcomeParts",
    "OutcomeRules",
    "OutcomeTimeline",
    "ProgrammeOutcomes",
    "SettingStays",
    "combine_outcomes",
    "compute_outcomes",
    "load_outcome_rules",
    "outcome_parts",
    "outcome_timeline",
    "patients_to_follow",
    "programme_outcomes",
    "readmission_stays",
]
