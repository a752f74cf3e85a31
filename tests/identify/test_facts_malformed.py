"""A resource the rules read that breaks FHIR's shapes (a CDS Hooks prefetch is whatever the EHR
sends; an NDJSON file whatever the export wrote) tells screening nothing where it is broken: it never
stops a hook call or a screening run with an error of ours."""

from __future__ import annotations

import copy
import datetime as dt
from collections.abc import Iterator
from typing import Any

from fhir_cm.identify import assess, fact_of, facts_from_resources, load_rules

from .population import condition, encounter, patient, screen

DAY = dt.date(2026, 5, 1)
P = "p-1"
#: What a broken field holds instead: another JSON type than FHIR's, or a list of such, or an
#: instant no clock can hold but the one it was written on (year 1, as far east of UTC as any zone).
JUNK: list[Any] = [7, "x", True, [], [7], ["x"], {}, {"a": 7}, [[7]], None, "0001-01-01T00:00:00+14:00"]


def _valid() -> list[dict[str, Any]]:
    obs = screen(P, DAY, positive=True)
    obs["component"] = [{"valueCodeableConcept": {"coding": [{"system": "http://loinc.org", "code": "LA33-6"}]}}]
    obs["effectivePeriod"] = {"start": DAY.isoformat()}
    stay = encounter(P, "IMP", DAY, 3)
    stay["partOf"] = {"reference": "Encounter/parent-1"}
    r5 = encounter(P, "IMP", DAY, 3)
    r5["class"] = [{"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v3-ActCode", "code": "IMP"}]}]
    r5["actualPeriod"] = r5.pop("period")
    merged = patient(P)
    merged["link"] = [{"type": "replaced-by", "other": {"reference": "Patient/p-2"}}]
    return [merged, stay, r5, condition(P, "I50.9"), obs]


def _paths(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every place inside a resource (but its type and id, without which it is no resource)."""
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in items:
        if path == () and key in ("resourceType", "id"):
            continue
        yield (*path, key)
        yield from _paths(child, (*path, key))


def _broken() -> Iterator[tuple[str, dict[str, Any]]]:
    for resource in _valid():
        for path in _paths(resource):
            for junk in JUNK:
                broken = copy.deepcopy(resource)
                parent = broken
                for key in path[:-1]:
                    parent = parent[key]
                parent[path[-1]] = junk
                yield f"{resource['resourceType']}.{'.'.join(map(str, path))} = {junk!r}", broken


def test_a_field_of_the_wrong_shape_tells_nothing_and_raises_nothing() -> None:
    raised = []
    for where, resource in _broken():
        try:
            fact_of(resource, load_rules())
            facts_from_resources(P, [resource])
        except Exception as exc:  # noqa: BLE001 (each is reported by the place broken)
            raised.append(f"{where}: {type(exc).__name__}")
    assert raised == []


def test_the_valid_resources_do_tell_something() -> None:
    """The fields broken above are ones the rules read: each valid resource makes a fact."""
    assert all(fact_of(r, load_rules()) is not None for r in _valid())


def test_a_deceased_boolean_sent_as_a_string_is_read_by_its_word() -> None:
    """``"false"`` is a non-empty string, true to Python: the living patient was excluded as deceased
    from every screening and every hook call."""
    admissions = [encounter(P, "IMP", DAY - dt.timedelta(days=d), 2) for d in (40, 90)]
    read = {
        value: assess(
            facts_from_resources(P, [{**patient(P), "deceasedBoolean": value}, *admissions]), load_rules(), DAY
        )
        for value in ("false", "False", " false ", "true", False, True)
    }
    assert {value: a.excluded for value, a in read.items()} == {
        "false": None,
        "False": None,
        " false ": None,
        "true": "deceased",
        False: None,
        True: "deceased",
    }
    assert read["false"].eligible
