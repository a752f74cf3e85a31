"""sync"""

# --- push (outbox → server) ---
from ._transition_plan import RECENT_DISCHARGE_DAYS, TransitionPlan, transition_plan
from ._push import default_worker_id, enqueue_unpushed, push_cases, push_pending
from ._report import CaseFailure, CaseWarning, PushReport
from ._standing import NotPushed, Standing, push_asked, where_cases_stand
from ._worker import Pause, Step, run_worker

# --- pull (server → cases), conflicts, transitions tracker ---
from ._conflicts import Clash, MergeOutcome, merge_case
from ._intake import server_fhir_version
from ._pull import CASE_RESOURCE_TYPES, PULL_OVERLAP, PullReport, pull
from ._discharges import FollowUpPush, push_follow_ups
from ._placement import PlacementError, PlacementHook, choose_placement, offer_placement, read_placement
from ._notifications import (
    NotificationMalformed,
    NotificationOutcome,
    NotificationRefused,
    check_secret,
    receive_notification,
)
from ._pull_round import PullRoundReport, pull_and_track, track_notified
from ._subscriptions import (
    SubscriptionRefused,
    SubscriptionState,
    SubscriptionsReport,
    check_subscriptions,
    subscription_states,
    sync_subscriptions,
    unsubscribe_all,
)
from ._transfer_summary import (
    NoSuchMove,
    WrittenSummary,
    handoff_moves,
    stored_transfer_summary,
    transfer_summary,
    write_transfer_summary,
)
from ._watch import WatchReport, changed_encounter_patients, settle_watch
from ._pull_round import pull_and_track as pull_step  # the worker's pull step
from ._transitions import FOLLOW_UP_DAYS, TransitionsReport, track_transitions

# --- a person's decision on a conflict ---
from ._resolve import ConflictNotResolvable, Keep, resolve

__all__ = [
    "RECENT_DISCHARGE_DAYS",
    "TransitionPlan",
    "transition_plan",
    "NotificationMalformed",
    "NotificationOutcome",
    "NotificationRefused",
    "SubscriptionRefused",
    "SubscriptionState",
    "SubscriptionsReport",
    "check_secret",
    "check_subscriptions",
    "receive_notification",
    "subscription_states",
    "sync_subscriptions",
    "unsubscribe_all",
    # push
    "CaseFailure",
    "CaseWarning",
    "NotPushed",
    "Pause",
    "PushReport",
    "Standing",
    "default_worker_id",
    "enqueue_unpushed",
    "push_asked",
    "push_cases",
    "push_pending",
    "Step",
    "run_worker",
    "where_cases_stand",
    # pull, conflicts, transitions
    "CASE_RESOURCE_TYPES",
    "FOLLOW_UP_DAYS",
    "PULL_OVERLAP",
    "Clash",
    "MergeOutcome",
    "PullReport",
    "FollowUpPush",
    "NoSuchMove",
    "PlacementError",
    "PlacementHook",
    "PullRoundReport",
    "WrittenSummary",
    "WatchReport",
    "TransitionsReport",
    "merge_case",
    "pull",
    "pull_and_track",
    "track_notified",
    "choose_placement",
    "offer_placement",
    "read_placement",
    "handoff_moves",
    "stored_transfer_summary",
    "transfer_summary",
    "write_transfer_summary",
    "push_follow_ups",
    "changed_encounter_patients",
    "settle_watch",
    "pull_step",
    "server_fhir_version",
    "track_transitions",
    # conflict resolution
    "ConflictNotResolvable",
    "Keep",
    "resolve",
]
