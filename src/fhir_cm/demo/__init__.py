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

from ._models import CaseWalk, DemoError, DemoServerUnavailable, DemoSummary, ServerRoundTrip
from ._pick import DEMO_SEED, pick_cases, shows_post_acute_pathway
from ._run import DEFAULT_CASES, DEMO_DIR, EXPORT_FILE, run_demo
from ._summary import render_summary
from ._walk import STAGES, WalkStep, walk_case

__all__ = [
    "DEFAULT_CASES",
    "DEMO_DIR",
    "DEMO_SEED",
    "EXPORT_FILE",
    "STAGES",
    "CaseWalk",
    "DemoError",
    "DemoServerUnavailable",
    "DemoSummary",
    "ServerRoundTrip",
    "WalkStep",
    "pick_cases",
    "render_summary",
    "run_demo",
    "shows_post_acute_pathway",
    "walk_case",
]
