"""A transaction- or batch-response read against the entries sent: one result per entry, or none.

An answer is taken for the entry at its place only when the response is well formed: one answer per
entry, each an entry with a ``response``, each write's answer naming the type (and a ``PUT
Type/id``'s, the id) it was asked to write. Otherwise the whole response is an ``InvalidResponse``
(with a ``summary`` for a person): which answer is whose cannot be told, so none is taken.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._errors import InvalidResponse, error_from_outcome
from ._results import WriteResult

if TYPE_CHECKING:
    from ._bundles import BundleEntry

__all__ = ["read_answers"]


def read_answers(kind: str, entries: Sequence[BundleEntry], body: Mapping[str, Any]) -> list[WriteResult]:
    """The result of each of ``entries`` from the ``{kind}-response`` Bundle ``body``."""
    answered = body.get("entry") or []
    if not isinstance(answered, list):
        raise InvalidResponse(f"the {kind}-response's entry is not an array", summary=_malformed(kind, "no entries"))
    if len(answered) != len(entries):
        # Which answers are missing cannot be told, so none is taken for any entry: what the server
        # did write is met again by the next round (every create conditional or by stable id,
        # every update If-Match'd), not written twice.
        raise InvalidResponse(
            f"{kind}-response has {len(answered)} entries for {len(entries)} sent",
            summary=_malformed(kind, f"{len(answered)} answers for {len(entries)} entries sent"),
        )
    for n, answer in enumerate(answered, 1):
        if not isinstance(answer, dict) or not isinstance(answer.get("response", {}), dict):
            raise InvalidResponse(
                f"{kind}-response entry {n} is not an entry with a response",
                summary=_malformed(kind, f"answer {n} is not an entry with a response"),
            )
    results = []
    for n, (entry, answer) in enumerate(zip(entries, answered, strict=True), 1):
        result = WriteResult.from_bundle_entry(answer)
        _check_answers(kind, n, entry, result)
        if result.status is not None and result.status >= 400:
            error = error_from_outcome(
                result.status, (answer.get("response") or {}).get("outcome"), entry.request_info()
            )
            result = WriteResult.from_bundle_entry(answer, error)
        results.append(result)
    return results


def _check_answers(kind: str, n: int, entry: BundleEntry, result: WriteResult) -> None:
    """A write's answer names the type it wrote (and a ``PUT Type/id`` that id). A server answering
    in the order it processed the entries, or leaving one out and adding another, had each answer
    read as the one to the entry at its place: one resource's copy recorded as another's."""
    if entry.method not in ("POST", "PUT") or result.status is None or result.status >= 400:
        return
    info = entry.request_info()
    wrote = f"{result.resource_type}/{result.id}"
    summary = _malformed(kind, f"answer {n} is about another resource than entry {n}")
    if result.resource_type is not None and result.resource_type != info.resource_type:
        raise InvalidResponse(
            f"{kind}-response entry {n} answers {wrote} for {entry.method} {entry.url.split('?')[0]}", summary=summary
        )
    if entry.method == "PUT" and "?" not in entry.url and result.id is not None and result.id != info.resource_id:
        raise InvalidResponse(f"{kind}-response entry {n} answers {wrote} for PUT {entry.url}", summary=summary)


def _malformed(kind: str, what: str) -> str:
    """The ``summary`` of a malformed bundle response: nothing in it is taken as written."""
    return f"the server's {kind}-response was malformed ({what}); none of its answers was taken"
