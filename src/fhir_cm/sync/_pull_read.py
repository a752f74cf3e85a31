"""Reading pulled resources as a case, and finding the ones that keep it from reading.

The pull takes a case's newer server copies in only if, together with what it already holds, they
read as a case (the mapping understands them) that breaks no rule of what can be true which the local
case did not break. When they do not, ``isolate`` adds them one at a time to find which resources are
in the way, so one bad resource (or one still waiting for another) does not keep the rest out.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from ..domain import Case, Plausibility, new_breaches
from ..mapping import CaseReads, MappingError, ResourceKey, case_to_resources, episode_key, resources_to_case

__all__ = ["RULE_PROBLEM", "CaseReader"]

RULE_PROBLEM = "breaks a rule of what can be true: "


class _Implausible(MappingError):
    """The resources read as a case, but one that breaks a domain rule the local case kept."""


class CaseReader:
    """Reads resources as a case for one FHIR version, identifier system and set of plausibility rules.

    ``bases``: those the server names itself by (the pull's, which grows as pages name more): a
    reference by an absolute URL at another base names another server's resource — a Practitioner
    there is an outside party, not the local record of the same id (``mapping.read_party``).
    """

    def __init__(self, version: str, system: str, rules: Plausibility, bases: Collection[str] | None = None) -> None:
        self.version, self.system, self.rules, self.bases = version, system, rules, bases

    def isolate(
        self,
        held: Mapping[ResourceKey, Mapping[str, Any]],
        local: Case | None,
        items: list[tuple[ResourceKey, Mapping[str, Any]]],
        reads: CaseReads | None = None,
    ) -> tuple[list[tuple[ResourceKey, Mapping[str, Any]]], list[tuple[tuple[ResourceKey, Mapping[str, Any]], str]]]:
        """Split ``items`` (which together keep the case from reading) into those the case reads with
        and those that keep it from reading (with why).

        Halves are tried onto what is already accepted, and a half that does not read is halved
        again, down to single resources: one resource in the way among thirty costs about ten reads
        of the case, not thirty. Round after round while any is accepted (a Task may be what makes
        its ServiceRequest readable), so one bad resource (or one still waiting for another) does not
        take the rest of its case down with it. ``reads``: see ``read``.
        """
        accepted: dict[ResourceKey, Mapping[str, Any]] = dict(held)
        good: list[tuple[ResourceKey, Mapping[str, Any]]] = []
        waiting = list(items)
        problems: dict[ResourceKey, str] = {}
        tried_whole = True  # the caller read them all together already
        while waiting:
            taken = self._admit(accepted, local, waiting, problems, reads, tried=tried_whole)
            if not taken:
                break
            good.extend(taken)
            accepted.update(taken)
            taken_keys = {key for key, _ in taken}
            waiting = [item for item in waiting if item[0] not in taken_keys]
            tried_whole = False
        return good, [((key, resource), problems[key]) for key, resource in waiting]

    def _admit(
        self,
        accepted: dict[ResourceKey, Mapping[str, Any]],
        local: Case | None,
        group: list[tuple[ResourceKey, Mapping[str, Any]]],
        problems: dict[ResourceKey, str],
        reads: CaseReads | None,
        *,
        tried: bool = False,
    ) -> list[tuple[ResourceKey, Mapping[str, Any]]]:
        """The items of ``group`` the case reads with, onto ``accepted`` (``tried``: the whole group
        is known not to read)."""
        if not tried:
            try:
                self.read({**accepted, **dict(group)}, local, reads=reads)
                return group
            except MappingError as exc:
                if len(group) == 1:
                    problems[group[0][0]] = str(exc)[:250]
                    return []
        if len(group) == 1:  # known not to read, alone: find out why
            return self._admit(accepted, local, group, problems, reads)
        mid = len(group) // 2
        first = self._admit(accepted, local, group[:mid], problems, reads)
        after = {**accepted, **dict(first)} if first else accepted
        return first + self._admit(after, local, group[mid:], problems, reads)

    def read(
        self,
        resources: Mapping[ResourceKey, Mapping[str, Any]],
        local: Case | None,
        *,
        checked: bool = True,
        reads: CaseReads | None = None,
    ) -> Case:
        """The case the resources describe; a case whose episode the server lacks borrows the local one.

        ``checked``: a case that breaks a rule of what can be true which the local case did not
        (see ``new_breaches``) does not read either (``_Implausible``), so the resource that brings
        the breach in is isolated and quarantined like an unreadable one. ``reads``: what earlier
        reads of the same copies found (``mapping.CaseReads``): the reads of one case's merge share it,
        so the copies they have in common are read once.
        """
        copies = list(resources.values())
        if local is not None and not any(k.type == "EpisodeOfCare" for k in resources):
            copies.append(case_to_resources(local, self.version, self.system)[episode_key(local)])
        case = resources_to_case(copies, self.version, self.system, bases=self.bases, reads=reads)
        if checked and (breaches := new_breaches(local, case, self.rules)):
            raise _Implausible(RULE_PROBLEM + "; ".join(f"{b.entity or 'case'} {b.line()}" for b in breaches)[:250])
        return case
