"""``CaseReader.isolate``: the resources that keep a case from reading are found by halving, and
what is found is what trying them one at a time finds."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fhir_cm.domain import Plausibility
from fhir_cm.mapping import MappingError, ResourceKey, case_to_resources
from fhir_cm.sync._pull_read import CaseReader
from fhir_cm.synthetic import generate_cases

SYSTEM = "urn:test:isolate"
TODAY = dt.date(2030, 1, 1)


def one_at_a_time(reader: CaseReader, held: dict[ResourceKey, Any], items: list[tuple[ResourceKey, Any]]) -> set:  # type: ignore[type-arg]
    accepted, waiting = dict(held), list(items)
    while waiting:
        left = []
        for key, resource in waiting:
            try:
                reader.read({**accepted, key: resource}, None)
            except MappingError:
                left.append((key, resource))
                continue
            accepted[key] = resource
        if len(left) == len(waiting):
            break
        waiting = left
    return {key for key, _ in waiting}


def test_two_bad_resources_among_many_are_found_in_few_reads_and_the_rest_taken_in() -> None:
    case = next(c for c in generate_cases(20, seed=91) if len(case_to_resources(c, "R4", SYSTEM)) >= 20)
    resources = case_to_resources(case, "R4", SYSTEM)
    held = {k: r for k, r in resources.items() if k.type == "EpisodeOfCare"}
    items = [(k, dict(r)) for k, r in resources.items() if k.type != "EpisodeOfCare"]
    goals = [i for i, (k, _) in enumerate(items) if k.type == "Goal"]
    tasks = [i for i, (k, _) in enumerate(items) if k.type == "Task"]
    bad = {items[goals[0]][0], items[tasks[-1]][0]}
    for i, (key, resource) in enumerate(items):
        if key in bad:  # a code with no counterpart in the domain: the case does not read with it
            field = "lifecycleStatus" if key.type == "Goal" else "status"
            items[i] = (key, {**resource, field: "nonsense"})
    reader = CaseReader("R4", SYSTEM, Plausibility(today=TODAY))
    reads = 0
    read = reader.read

    def counted(*args: Any, **kwargs: Any) -> Any:
        nonlocal reads
        reads += 1
        return read(*args, **kwargs)

    reader.read = counted  # type: ignore[method-assign]
    good, unread = reader.isolate(held, None, items)

    assert (
        {key for (key, _), _ in unread}
        == bad
        == one_at_a_time(CaseReader("R4", SYSTEM, Plausibility(today=TODAY)), held, items)
    )
    assert {key for key, _ in good} == {key for key, _ in items} - bad
    assert all(problem for _, problem in unread)
    assert reads < len(items)  # one at a time would read the case once per resource, and again
