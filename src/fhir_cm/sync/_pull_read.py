"""Reading pulled resources as a case, and finding the ones that keep it from reading.

The pull takes a case's newer server copies in only if, together with what it already holds, they
read as a case (the mapping understands them) that breaks no rule of what can be true which the local
case did not break. When they do not, ``isolate`` adds them one at a time to find which resources are
in the way, so one bad resource (or one still waiting for another) does not keep the rest out.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..domain import Case, Plausibility, new_breaches
from ..mapping import MappingError, ResourceKey, case_to_resources, episode_key, resources_to_case

__all__ = ["MAPPING_PROBLEM", "RULE_PROBLEM", "CaseReader"]

MAPPING_PROBLEM = "not readable as case data: "
RULE_PROBLEM = "breaks a rule of what can be true: "


class _Implausible(MappingError):
    """The resources read as a case, but one that breaks a domain rule the local case kept."""


class CaseReader:
    """Reads resources as a case for one FHIR version, identifier system and set of plausibility rules."""

    def __init__(self, version: str, system: str, rules: Plausibility) -> None:
        self.version, self.system, self.rules = version, system, rules

    def isolate(
        self,
        held: Mapping[ResourceKey, Mapping[str, Any]],
        local: Case | None,
        items: list[tuple[ResourceKey, Mapping[str, Any]]],
    ) -> tuple[list[tuple[ResourceKey, Mapping[str, Any]]], list[tuple[tuple[ResourceKey, Mapping[str, Any]], str]]]:
        """Split ``items`` into those the case reads with and those that keep it from reading (with why).

        Added one at a time onto what is already accepted, round after round while any is accepted
        (a Task may be what makes its ServiceRequest readable), so one bad resource (or one still
        waiting for another) does not take the rest of its case down with it.
        """
        accepted: dict[ResourceKey, Mapping[str, Any]] = dict(held)
        good: list[tuple[ResourceKey, Mapping[str, Any]]] = []
        waiting = list(items)
        problems: dict[ResourceKey, str] = {}
        while waiting:
            left = []
            for key, resource in waiting:
                try:
                    self.read({**accepted, key: resource}, local)
                except MappingError as exc:
                    problems[key] = str(exc)[:250]
                    left.append((key, resource))
                    continue
                accepted[key] = resource
                good.append((key, resource))
            if len(left) == len(waiting):
                break
            waiting = left
        return good, [((key, resource), problems[key]) for key, resource in waiting]

    def read(
        self, resources: Mapping[ResourceKey, Mapping[str, Any]], local: Case | None, *, checked: bool = True
    ) -> Case:
        """The case the resources describe; a case whose episode the server lacks borrows the local one.

        ``checked``: a case that breaks a rule of what can be true which the local case did not
        (see ``new_breaches``) does not read either (``_Implausible``), so the resource that brings
        the breach in is isolated and quarantined like an unreadable one.
        """
        copies = list(resources.values())
        if local is not None and not any(k.type == "EpisodeOfCare" for k in resources):
            copies.append(case_to_resources(local, self.version, self.system)[episode_key(local)])
        case = resources_to_case(copies, self.version, self.system)
        if checked and (breaches := new_breaches(local, case, self.rules)):
            raise _Implausible(RULE_PROBLEM + "; ".join(f"{b.entity or 'case'} {b.line()}" for b in breaches)[:250])
        return case
