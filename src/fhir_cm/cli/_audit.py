"""Audit rows for the command line's writes, as the API writes its own.

Changes made with ``fhir-cm import``, ``identify --enrol``, ``conflicts resolve``, ``quarantine
dismiss`` and ``placement offer``/``choose`` touch the same cases as the API's, so the audit log names them too: a hospital's
auditor asks who changed a case, whatever the door. There is no API key on the command line; the
principal is the operating-system account that ran it, prefixed ``cli:`` so it is never taken for a
key id. Each row is written in the transaction that makes the change, through the job's ``then`` hook.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy.orm import Session

from ..store import record_audit

__all__ = ["cli_principal", "audited"]


def cli_principal() -> str:
    """``cli:`` and the account running the command (an account name, not PHI); ``cli:unknown`` when
    the system cannot say (a container's uid with no passwd entry)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "unknown"
    return f"cli:{user[:100]}"


def audited(
    action: str, case_ids: Callable[[Any], Iterable[str | None]], detail: Callable[[Any], str | None] = lambda _: None
) -> Callable[[Session, Any], None]:
    """A job's ``then`` hook writing one ``action`` row per case ``case_ids`` finds in the job's result."""
    principal = cli_principal()

    def audit(session: Session, result: Any) -> None:
        record_audit(session, principal=principal, action=action, case_ids=case_ids(result), detail=detail(result))

    return audit
