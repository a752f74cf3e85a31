"""Use cases: every job a person or a service asks for, written once.

The command line (``fhir_cm.cli``), the API (``fhir_cm.api``) and the demo call these functions;
they hold no sync logic of their own. Each job takes the store and the settings, opens the FHIR
client the job needs (:mod:`._clients` is the one place that chooses it), and returns a typed report:

* :func:`run_push` — push the cases of a file, cases given, or everything pending → :class:`PushOutcome`;
* :func:`run_pull` — pull what changed on the server, then track the transitions of the cases it
  touched → ``PullRoundReport``;
* :func:`list_transitions` — the moves between care settings the store knows;
* :func:`settle_conflict` — a person's decision on a conflict (``local`` re-applies the local value
  and queues the case; ``server`` keeps the server's);
* :func:`run_sync_worker` — push and pull in rounds until stopped;
* :func:`pick_fhir_version` / :func:`offline_fhir_version` — which FHIR version a job speaks;
* :func:`run_identify` / :func:`enrol` — screen a population for candidates, enrol the chosen ones;
* :func:`caseload_page` / :func:`read_caseload` — the caseload per case manager on a day, from kept
  parts (the API) or from every stored case (the command line) → :class:`CaseloadPage`;
* :func:`worklist_page` / :func:`read_worklist` — a page of the worklist (filters, order, dates as
  written) from kept parts (the API) or from every stored case (the command line) → :class:`WorklistPage`.
"""

from ._caseload import CaseloadAsk, CaseloadPage, caseload_page, caseload_statuses, read_caseload
from ._cases_in import CaseInputError, parse_cases, read_cases
from ._clients import NoFhirServer, pull_client, push_client, require_fhir_base
from ._identify import NdjsonFilesMissing, enrol, run_identify, run_identify_files
from ._handoff import build_transfer_summaries, write_transfer_summaries
from ._placement import choose_facility, follow_placement, offer_to_facilities, placements_of
from ._pull import run_pull
from ._subscriptions import list_subscriptions_on_server, notified, subscribe, unsubscribe
from ._push import PushOutcome, PushVerdict, run_push
from ._resolve import Keep, settle_conflict
from ._transitions import list_transitions
from ._version import offline_fhir_version, pick_fhir_version
from ._worker import run_sync_worker
from ._worklist import MAX_PAGE, WorklistAsk, WorklistPage, items_as_written, read_worklist, worklist_page

__all__ = [
    "enrol",
    "run_identify",
    "run_identify_files",
    "NdjsonFilesMissing",
    "list_subscriptions_on_server",
    "notified",
    "subscribe",
    "unsubscribe",
    "choose_facility",
    "follow_placement",
    "offer_to_facilities",
    "placements_of",
    "build_transfer_summaries",
    "write_transfer_summaries",
    "CaseInputError",
    "Keep",
    "NoFhirServer",
    "PushOutcome",
    "PushVerdict",
    "list_transitions",
    "offline_fhir_version",
    "parse_cases",
    "pick_fhir_version",
    "pull_client",
    "push_client",
    "read_cases",
    "require_fhir_base",
    "run_pull",
    "run_push",
    "run_sync_worker",
    "settle_conflict",
    "MAX_PAGE",
    "CaseloadAsk",
    "CaseloadPage",
    "caseload_page",
    "caseload_statuses",
    "read_caseload",
    "WorklistAsk",
    "WorklistPage",
    "items_as_written",
    "read_worklist",
    "worklist_page",
]
