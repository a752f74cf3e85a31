"""A Group's run: each Group exported from its own watermark, the Patients added since read whole.

A server's Group export covers the Patients the Group lists, not those of the Groups it lists: the
Group asked for and each Group it lists that lists Patients (``GroupScope.listing``) is exported,
each from its own watermark — one listed since the last run has none, and is read whole.

An incremental export asks for what changed ``_since`` the watermark, and the server filters by each
resource's lastUpdated: a Patient added to a Group since, whose own data is older, is not in it. Each
Group's members are kept with its watermark (``store.keep_group_members``); those it lists now and did
not then are read whole, by searches for just them (``_read.read_patients``). A Group whose members
were not kept (screened by a version that kept none, or listing no one then) is read whole once; one
read from an instant given (``--since``) is read from it, with no members kept none is taken as added.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from pydantic import BaseModel, Field

from ..store import Store, get_watermark, screened_group_members
from ._group import GroupScope
from ._report import ScreeningReport
from ._rules import EligibilityRules
from ._watermark import watermark_key

__all__ = ["GroupRead", "MemberList", "read_groups"]

#: Reads one Group's export (its id) changed since (an instant, None: everything).
ReadGroup = Callable[[str, str | None], Awaitable[ScreeningReport]]
#: Reads these patients whole, counting into the report.
ReadWhole = Callable[[Sequence[str], ScreeningReport], Awaitable[None]]


class MemberList(BaseModel):
    """A Group's Patients now, and those kept from its last run (to keep the new list against)."""

    group: str
    members: list[str]
    known: set[str]


class GroupRead(BaseModel):
    """What a Group's run read, and what to keep once it is ranked."""

    report: ScreeningReport
    marks: dict[str, str] = Field(description="The watermark of each Group exported, by key.")
    lists: list[MemberList] = Field(description="The members of each Group exported, to keep with its watermark.")


async def read_groups(
    store: Store,
    server: str,
    rules: EligibilityRules,
    read: ReadGroup,
    read_whole: ReadWhole,
    scope: GroupScope,
    say: Callable[[str], None],
    *,
    since: str | None,
    given: str | None,
    full: bool,
) -> GroupRead:
    """Export the Group asked for (from ``since``, its watermark or the one given) and those it lists
    (each from its own watermark; ``given``, or everything with ``full``), then read whole the Patients
    each lists that it did not at its last run."""
    asked = scope.groups[0]
    report: ScreeningReport | None = None
    marks: dict[str, str] = {}
    lists: list[MemberList] = []
    added: set[str] = set()
    for gid in [asked, *scope.listing]:
        with store.session() as s:
            known = screened_group_members(s, server, gid)
            if gid == asked:
                from_ = since
            elif given is not None or full:
                from_ = given
            else:
                from_ = get_watermark(s, server, watermark_key(gid, rules))
        members = scope.members.get(gid, [])
        if from_ is not None and known:
            added |= {p for p in members if p not in known}
        elif from_ is not None and given is None and members:  # from its watermark, with no members kept
            say(f"Group/{gid}: the members it listed when last screened were not kept; its members are read whole")
            from_ = None
        if gid != asked:
            say(f"reading the members of Group/{gid}, listed within Group/{asked}")
        part = await read(gid, from_)
        if report is None:
            report = part
        else:
            report.add(part)
        marks[watermark_key(gid, rules)] = part.transaction_time
        lists.append(MemberList(group=gid, members=members, known=known))
    assert report is not None  # the Group asked for is read first
    await read_whole(sorted(added), report)
    return GroupRead(report=report, marks=marks, lists=lists)
