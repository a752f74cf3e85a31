"""Hand-off documents: the transfer summaries of a case's moves out of a hospital, SNF or rehabilitation
stay, built from the store (no server needed) or written to the server with their DocumentReference."""

from __future__ import annotations

from typing import Any

from ..config import Settings
from ..store import Store, get_case
from ..sync import NoSuchMove, WrittenSummary, handoff_moves, stored_transfer_summary, write_transfer_summary
from ._clients import push_client, require_fhir_base
from ._version import offline_fhir_version

__all__ = ["build_transfer_summaries", "write_transfer_summaries"]


def _moves_of(store: Store, case_id: str, number: int | None) -> tuple[Any, list[int]]:
    with store.session(read_only=True) as session:
        case = get_case(session, case_id)
    if case is None:
        raise LookupError(f"no case {case_id}")
    count = len(handoff_moves(case))
    if number is not None and not 1 <= number <= count:
        raise NoSuchMove(
            f"case {case_id} has {count} move(s) out of a hospital, SNF or rehabilitation stay; "
            f"there is no move {number}"
        )
    return case, [number] if number is not None else list(range(1, count + 1))


def build_transfer_summaries(
    store: Store, settings: Settings, case_id: str, *, number: int | None = None, version: str | None = None
) -> list[dict[str, Any]]:
    """The case's transfer summaries (or the ``number``-th one), as document Bundles in ``version``
    (default: the configured FHIR version, R4 when ``auto``). Raises ``LookupError`` / ``NoSuchMove``."""
    case, numbers = _moves_of(store, case_id, number)
    speak = offline_fhir_version(settings, version)
    with store.session(read_only=True) as session:
        return [stored_transfer_summary(session, case, n, speak, settings.identifier_system) for n in numbers]


async def write_transfer_summaries(
    store: Store, settings: Settings, case_id: str, *, number: int | None = None
) -> list[WrittenSummary]:
    """Write the case's transfer summaries (or the ``number``-th one) to the configured server, each
    with a DocumentReference for the receiving provider; again is harmless (conditional creates)."""
    require_fhir_base(settings)
    _, numbers = _moves_of(store, case_id, number)
    async with push_client(settings) as client:
        return [await write_transfer_summary(store, client, settings, case_id, n) for n in numbers]
