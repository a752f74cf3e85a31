"""The store: cases, their FHIR resources, the case documents last imported, the sync ledger, the
outbox, transitions, quarantine, pull watermarks and conflicts, in SQLite (a file, by default) or
PostgreSQL (to scale out).

Open it with ``open_store(settings.database_url)`` (migrates the schema to the newest revision),
then work in transactions::

    with store.session() as s:
        save_case(s, case)          # the case and its outbox row commit together
        put_resources(s, case.id, pairs, fhir_version="R4")

Functions take a ``Session`` and return domain models or pydantic rows, never ORM objects.
"""

from ._audit import AuditEntry, list_audit, record_audit
from ._case_cache import CaseCache
from ._cases import (
    CaseFilters,
    case_revisions,
    CaseRecord,
    get_case,
    get_case_record,
    get_case_records,
    list_case_records,
    list_cases,
    save_case,
    warm_case_cache,
)
from ._conflicts import (
    ConflictRecord,
    Resolution,
    add_conflict,
    list_conflicts,
    resolve_conflict,
)
from ._documents import get_case_document, put_case_document
from ._directory import practitioner_on_cases, practitioners_starting_with, programmes_in_use
from ._engine import BUSY_TIMEOUT_SECONDS
from ._errors import (
    LeaseLost,
    NotFound,
    SchemaMismatch,
    StaleRevision,
    StoreError,
    StoreUnavailable,
)
from ._ledger import (
    LedgerEntry,
    find_ledger,
    ledger_holds_any,
    get_ledger,
    ledger_by_server_id,
    list_ledger,
    put_ledger,
)
from ._limits import ServerLimit, forget_server_limit, get_server_limit, set_server_limit
from ._migrate import alembic_config, head_revision
from ._outbox import (
    OutboxItem,
    claim_outbox,
    mark_pushed,
    mark_pushed_many,
    queue_push,
    mark_push_failed,
    held_leases,
    list_outbox,
    outbox_counts,
    outbox_statuses,
    purge_outbox,
    release_claim,
    renew_lease,
    renew_leases,
    take_over_dead_leases,
)
from ._holders import HolderState, LeaseHolder, holder_state
from ._principals import (
    ApiKey,
    ApiRole,
    authenticate_api_key,
    create_api_key,
    get_api_key,
    list_api_keys,
    revoke_api_key,
)
from ._quarantine import QuarantinedResource, add_quarantine, list_quarantine
from ._resources import (
    FhirVersion,
    StoredResource,
    content_hash,
    content_json,
    get_resource,
    get_resources,
    put_resources,
)
from ._stamps import CaseStamp, case_stamps, cases_version, store_version
from ._store import Store, open_store
from ._tables import ConflictStatus, OutboxStatus
from ._transitions import (
    RecordedTransition,
    case_transitions,
    list_transitions,
    record_transitions,
)
from ._follow_ups import follow_up_latencies, record_follow_ups_on_server
from ._placements import Candidate, Placement, get_placement, list_placements, put_placement
from ._subscriptions import (
    HeldSubscription,
    QueuedTracking,
    forget_subscription,
    get_subscription,
    list_subscriptions,
    mark_tracked,
    pending_tracking,
    put_subscription,
    queue_tracking,
    secret_hash,
    update_subscription,
)
from ._cds import CARD_KEPT, IssuedCard, RecordedFeedback, card_issued, list_feedback, record_card, record_feedback
from ._screening import (
    CandidateRecord,
    FactRecord,
    count_candidates,
    drop_facts,
    list_candidates,
    mark_enrolled,
    open_case_patient_ids,
    patient_facts_after,
    put_facts,
    replace_candidates,
)
from ._watch import mark_watched, open_case_patients, watched_cases
from ._watermarks import Watermark, get_watermark, list_watermarks, set_watermark

__all__ = [
    "CARD_KEPT",
    "IssuedCard",
    "RecordedFeedback",
    "card_issued",
    "list_feedback",
    "record_card",
    "record_feedback",
    "CandidateRecord",
    "FactRecord",
    "count_candidates",
    "drop_facts",
    "list_candidates",
    "mark_enrolled",
    "open_case_patient_ids",
    "patient_facts_after",
    "put_facts",
    "replace_candidates",
    "HeldSubscription",
    "QueuedTracking",
    "forget_subscription",
    "get_subscription",
    "list_subscriptions",
    "mark_tracked",
    "pending_tracking",
    "put_subscription",
    "queue_tracking",
    "secret_hash",
    "update_subscription",
    "Candidate",
    "Placement",
    "Watermark",
    "BUSY_TIMEOUT_SECONDS",
    "ApiKey",
    "ApiRole",
    "AuditEntry",
    "CaseCache",
    "CaseFilters",
    "CaseRecord",
    "CaseStamp",
    "ConflictRecord",
    "ConflictStatus",
    "FhirVersion",
    "HolderState",
    "LeaseHolder",
    "LeaseLost",
    "LedgerEntry",
    "NotFound",
    "OutboxItem",
    "OutboxStatus",
    "QuarantinedResource",
    "RecordedTransition",
    "Resolution",
    "SchemaMismatch",
    "ServerLimit",
    "StaleRevision",
    "Store",
    "StoreError",
    "StoreUnavailable",
    "StoredResource",
    "add_conflict",
    "add_quarantine",
    "alembic_config",
    "authenticate_api_key",
    "case_stamps",
    "case_revisions",
    "cases_version",
    "case_transitions",
    "claim_outbox",
    "mark_pushed",
    "mark_pushed_many",
    "content_hash",
    "content_json",
    "create_api_key",
    "queue_push",
    "mark_push_failed",
    "find_ledger",
    "ledger_holds_any",
    "forget_server_limit",
    "get_api_key",
    "get_case",
    "get_case_document",
    "get_case_record",
    "get_case_records",
    "get_ledger",
    "get_resource",
    "get_resources",
    "get_server_limit",
    "get_watermark",
    "follow_up_latencies",
    "get_placement",
    "list_placements",
    "list_watermarks",
    "put_placement",
    "mark_watched",
    "open_case_patients",
    "record_follow_ups_on_server",
    "head_revision",
    "held_leases",
    "holder_state",
    "ledger_by_server_id",
    "list_api_keys",
    "list_audit",
    "list_case_records",
    "list_cases",
    "list_conflicts",
    "list_ledger",
    "list_outbox",
    "list_quarantine",
    "list_transitions",
    "open_store",
    "outbox_counts",
    "outbox_statuses",
    "practitioner_on_cases",
    "practitioners_starting_with",
    "programmes_in_use",
    "purge_outbox",
    "put_case_document",
    "put_ledger",
    "put_resources",
    "record_audit",
    "record_transitions",
    "release_claim",
    "renew_lease",
    "renew_leases",
    "resolve_conflict",
    "revoke_api_key",
    "save_case",
    "warm_case_cache",
    "set_server_limit",
    "set_watermark",
    "store_version",
    "watched_cases",
    "take_over_dead_leases",
]
