"""A server's transaction limit across runs: loaded before the first case, saved when a refusal teaches one.

The FHIR client learns a limit when a server refuses a transaction for its size or kind (see
``fhir_cm.fhir._limits``) and keeps it for the rest of its life; this module makes a later run —
another process, a fresh client — start from it, so the server is not asked to refuse again first.
``FHIR_CM_MAX_TRANSACTION_ENTRIES``, set by a person, wins over what is remembered.
"""

from __future__ import annotations

import logging

from ..config import Settings
from ..fhir import AsyncFhirClient
from ..store import Store, get_server_limit, set_server_limit

__all__ = ["load_transaction_limit", "save_transaction_limit"]

log = logging.getLogger("fhir_cm.sync")


def load_transaction_limit(store: Store, client: AsyncFhirClient, settings: Settings) -> int | None:
    """Give ``client`` the configured or remembered limit of its server; returns the remembered one."""
    with store.session(read_only=True) as s:
        known = get_server_limit(s, client.base_url)
    remembered = known.max_transaction_entries if known is not None else None
    chosen = settings.max_transaction_entries if settings.max_transaction_entries is not None else remembered
    learnt = client.learnt_transaction_limit  # a client used for several runs (the worker) keeps what it learnt
    if learnt is not None and (chosen is None or learnt.max_entries < chosen):
        chosen = learnt.max_entries
    if chosen is not None:
        client.limit_transactions(chosen)
    return remembered


def save_transaction_limit(store: Store, client: AsyncFhirClient, saved: int | None) -> int | None:
    """Store the limit the client learnt, if it differs from ``saved``; returns the limit now stored."""
    learnt = client.learnt_transaction_limit
    if learnt is None or learnt.max_entries == saved:
        return saved
    with store.session() as s:
        set_server_limit(s, client.base_url, learnt.max_entries, learnt.reason)
    log.info("remembered for %s: at most %d entries per transaction", client.base_url, learnt.max_entries)
    return learnt.max_entries
