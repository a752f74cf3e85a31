"""Why the server refused a case, in its own words and without the case's data.

A person looking at a failed case needs the server's reason (status, issue code, HAPI message code,
first line of diagnostics), not just an error class. ``fhir_cm.fhir.server_reason`` keeps the
server's words but scrubs out everything of ours it might quote back; this module hands it every
value the push sent for the case (the resources, the patient's name and id), so the scrub knows
what to look for.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..domain import Case
from ..fhir import FhirError, ServerReason, server_reason, server_warnings

__all__ = ["SHOWN_REFUSALS", "refusal", "refusal_text", "refused_entries", "warnings"]

#: Refused entries whose reasons a failed case shows (one line each); the others are counted. A
#: batch refusing every entry alike must not push the reason past what the outbox keeps of it.
SHOWN_REFUSALS = 3


def refusal(exc: FhirError, case: Case, sent: Iterable[Mapping[str, Any]]) -> ServerReason | None:
    """The server's reason for ``exc`` (None for a failure with no answer, e.g. the network)."""
    if exc.status is None:
        return None
    return server_reason(exc, sent, also=_ours(case))


def warnings(outcome: Any, status: int | None, case: Case, sent: Iterable[Mapping[str, Any]]) -> list[ServerReason]:
    """The warnings the server gave with a write it took (``outcome``), cleaned the same way."""
    return server_warnings(outcome, status, sent, also=_ours(case))


def _ours(case: Case) -> tuple[str | None, ...]:
    return (case.patient.name, case.patient.id, case.id)


def refusal_text(exc: FhirError, reason: ServerReason | None) -> str:
    """One line: the server's reason where there is one, else what happened (the network, a
    malformed answer) or the error class (no PHI either way)."""
    if reason is None:
        return exc.summary or type(exc).__name__
    return reason.text


def refused_entries(refused: list[tuple[str, str]]) -> str:
    """``(entry, reason)`` of each entry a server refused on its own (a batch's, a single request's),
    as one line: each shown, named, up to ``SHOWN_REFUSALS``, then how many more."""
    shown = "; ".join(f"{entry}: {reason}" for entry, reason in refused[:SHOWN_REFUSALS])
    more = len(refused) - SHOWN_REFUSALS
    return f"{shown}; and {more} more refused" if more > 0 else shown
