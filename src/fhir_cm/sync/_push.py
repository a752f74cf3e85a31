"""Push: outbox → server, one transaction Bundle per case, idempotent and resumable.

Three modules, one job each: ``_push_session`` (``PushSession``: one run against one server — its
capabilities, the adapter's Device, the ledger, the parties, the per-batch preparation),
``_push_case`` (one case's rounds, with its match and conflict handling) and ``_push_loop`` (the
outbox loop that keeps the server busy: batches, waves, leases). This module names the whole.

How a claimed batch of cases is pushed:

1. **Prepare** (per batch, a couple of batch requests): the patients the ledger does not know on
   this server are resolved — ``GET Patient/<party id>`` (the EHR's own record), else a minimal
   Patient (identifier + name) is created conditionally on ``<system>|<party id>``; references to
   the patient are pointed at whatever the server calls it. Resources found by a stable id (see
   ``_identity``) and unknown to the ledger are looked up, so an existing copy is merged onto.
2. **Per case** (bounded by a semaphore): the case is mapped over the ledger's last server copies
   (lossless merge). A resource whose content equals its server copy is *unchanged* and not sent;
   nor is another system's resource (no business identifier of ours, e.g. a hospital's Encounter
   read as a stay) unless the case manager changed what the case reads from it, and then only the
   elements carrying that change (``_foreign``);
   a known one is ``PUT`` with ``If-Match``; a new one is a conditional create (or a stable-id PUT).
   One Provenance per activity rides along. The client degrades transaction → batch → single
   requests when the server refuses, and splits a transaction too large for the server into parts
   within its limit (learnt from the refusal, remembered per server: ``_limits``); every request
   stays idempotent. A refusal reaches the report in the server's words, without our data
   (``_refusals``).
3. **Record** each entry's outcome in the ledger at once (server id, versionId, server copy — read
   back when the answer had no body), then, only after that, complete the outbox row. A process
   killed at any point leaves the row claimed; the next push on the same host takes it over at
   once (elsewhere, once the lease expires: ``_leases``) and finds on the server (by identifier or
   stable id) whatever the dead one wrote.

Pipelining: the first claim runs (in a thread) while the capabilities request is out, and of a
batch larger than twice the concurrency the first wave is prepared alone and sent while the rest
is prepared, so the server is not idle while a whole batch's lookups come back; once the batch's
last cases are out, the next batch is claimed and prepared while they finish.

Rounds: a conditional create that matched an existing resource whose content differs is followed
by an ``If-Match`` update of it; a version conflict (409/412) re-reads the server copy, merges only
what the adapter changed (``_merge``) and retries once — clashing elements become a conflict in the
store and the case fails until a person decides. Transient failures (429, 5xx, lost answers) retry
the round a bounded number of times, then leave the row to a later push.
"""

from __future__ import annotations

from ._push_loop import default_worker_id, enqueue_unpushed, push_cases, push_pending

__all__ = ["default_worker_id", "enqueue_unpushed", "push_cases", "push_pending"]
