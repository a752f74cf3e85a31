"""How many entries one transaction may hold on a server, learnt from its refusals, and how to split.

Servers refuse transactions for their size or kind without saying so in their CapabilityStatement:
Medplum answers 400 "Transaction requires strict isolation but has too many entries" to a
transaction with a conditional entry and more than 8 entries (and "… more update operations than
allowed" beyond 50 updates), HAPI 413 "HAPI-0528: Transaction Bundle Too large … maximum permitted
transaction bundle size of N" when configured so, a proxy a bare 413, and some servers declare
transactions yet answer 405/501 or "transactions not supported". Nothing was applied in each case,
so the same entries may be sent again in smaller transactions.

:func:`limit_after_refusal` turns a refusal into a :class:`TransactionLimit` (the number the server
stated, Medplum's known 8 or 50, else half of what was sent; 0 means "no transactions at all"), and
:func:`plan_parts` cuts a transaction into parts of at most that many entries such that each part
references (by ``urn:uuid``) only entries of its own or earlier parts — the sender rewrites those
references to the ids the server assigned before sending a later part. Entries linked by references
stay in one atomic part whenever their group fits.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass

from ._errors import MAX_DIAGNOSTICS, FhirError, PayloadTooLarge, UnsupportedByServer, redact

__all__ = ["MEDPLUM_SERIALIZABLE_ENTRIES", "TransactionLimit", "limit_after_refusal", "plan_parts"]

#: Medplum's ``maxSerializableTransactionEntries``: a transaction with a conditional entry holds at most this many.
MEDPLUM_SERIALIZABLE_ENTRIES = 8
#: Medplum's ``maxUpdates`` per transaction.
MEDPLUM_MAX_UPDATES = 50

_STRICT_ISOLATION = re.compile(r"requires strict isolation", re.IGNORECASE)
_TOO_MANY_UPDATES = re.compile(r"more update operations than allowed", re.IGNORECASE)
# "… maximum permitted transaction bundle size of 20", "limit of 500 entries", "at most 100 entries".
_STATED = re.compile(r"(?:maxim\w*|max|limit|at most|allowed)\D{0,60}?(\d{1,6})", re.IGNORECASE)


@dataclass(frozen=True)
class TransactionLimit:
    """The most entries a transaction may hold on one server (0: send no transactions there).

    ``lasting`` says the refusal was about the number of entries or the bundle kind, so it holds for
    later runs too; a bare 413 (bytes, not entries) only shapes the current run. ``reason`` is the
    server's own words, redacted, for logs and the store — never request content.
    """

    max_entries: int
    lasting: bool
    reason: str


def _stated_limit(text: str) -> int | None:
    found = _STATED.search(text)
    return int(found.group(1)) if found else None


def limit_after_refusal(exc: FhirError, sent: int) -> TransactionLimit | None:
    """The limit a refusal of a ``sent``-entry transaction teaches, or None when it teaches none.

    The new limit is always below ``sent`` (so splitting makes progress) and at least 1, except for
    a refusal of the bundle kind itself (405/501 or "not supported"), which gives 0.
    """
    text = exc.diagnostics or ""
    status = f"{exc.status} " if exc.status else ""
    reason = redact(f"{status}{text}".strip() or type(exc).__name__, MAX_DIAGNOSTICS)
    if isinstance(exc, UnsupportedByServer):
        return TransactionLimit(0, True, reason) if exc.status is not None else None
    if not isinstance(exc, PayloadTooLarge):
        return None
    lasting = exc.status != 413 or bool(_stated_limit(text)) or "entr" in text.lower()
    if _STRICT_ISOLATION.search(text):
        wanted = MEDPLUM_SERIALIZABLE_ENTRIES
    elif _TOO_MANY_UPDATES.search(text):
        wanted = MEDPLUM_MAX_UPDATES
    else:
        wanted = _stated_limit(text) or math.ceil(sent / 2)
    return TransactionLimit(max(1, min(wanted, sent - 1)), lasting, reason)


# -- splitting ------------------------------------------------------------------------------------


def _groups(deps: Sequence[set[int]]) -> list[list[int]]:
    """Entries linked by references, directly or not; groups in order of their first entry."""
    parent = list(range(len(deps)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, targets in enumerate(deps):
        for j in targets:
            parent[root(i)] = root(j)
    groups: dict[int, list[int]] = {}
    for i in range(len(deps)):
        groups.setdefault(root(i), []).append(i)
    return list(groups.values())


def _cycles(deps: Sequence[set[int]], members: list[int]) -> list[list[int]]:
    """Strongly connected components of ``members`` (Tarjan), referenced components first."""
    inside = set(members)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    stack: list[int] = []
    on_stack: set[int] = set()
    out: list[list[int]] = []

    def visit(v: int) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(deps[v] & inside):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            out.append(sorted(component))

    for v in members:
        if v not in index:
            visit(v)
    return out  # Tarjan emits a component after every component it references


def plan_parts(deps: Sequence[set[int]], limit: int) -> list[list[int]]:
    """Indexes of entries in parts of at most ``limit``, each referencing only itself or earlier parts.

    ``deps[i]`` holds the entries entry ``i`` references. A reference group that fits stays whole
    (one atomic part); a larger one is cut in dependency order. Entries that reference each other
    in a cycle cannot be cut: such a cycle larger than ``limit`` becomes one part of its own, which
    the server will refuse again.
    """
    if limit < 1:
        raise ValueError("a transaction holds at least one entry")
    pieces: list[list[int]] = []
    for group in _groups(deps):
        if len(group) <= limit:
            pieces.append(group)
        else:
            pieces.extend(_cycles(deps, group))
    parts: list[list[int]] = []
    current: list[int] = []
    for piece in pieces:
        if current and len(current) + len(piece) > limit:
            parts.append(current)
            current = []
        current = current + piece
    if current:
        parts.append(current)
    return [sorted(part) for part in parts]
