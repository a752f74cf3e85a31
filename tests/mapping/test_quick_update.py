"""An update's quick proofs (``Field.written``) never change what the update gives.

An update first asks each field whether the base copy already holds exactly the JSON the field
would write — a plain comparison — and reads the element back into domain values only when it does
not. These tests hold the quick way to the general one (``map_case(..., quick=False)``) on varied
cases over varied bases: the case's own resources, another case's resources under the same keys
(nearly every field differs), server copies dressed by other systems, and bases with elements
dropped, reordered or padded with others' items. And each proof, taken alone, is sound: whenever a
field says the resource holds what it would write, writing it changes nothing.
"""

from __future__ import annotations

import copy
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fhir_cm.domain import Case
from fhir_cm.mapping import ResourceKey, case_to_resources
from fhir_cm.mapping._case import SPECS, case_plan, map_case
from fhir_cm.mapping._fields import Ctx
from tests.mapping.builders import SYSTEM
from tests.mapping.test_lossless import FOREIGN_CODING, FOREIGN_EXT, server_copy
from tests.strategies import cases

_KINDS = ("needs", "goals", "referrals", "team", "contacts", "stays")
_SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same_keys(case: Case, like: Case) -> Case:
    """``case`` with the ids of ``like`` (entity by entity, in order), references renamed to match:
    a different case whose resources have the same keys, so an update meets bases that differ."""
    renamed = {case.id: like.id}
    for kind in _KINDS:
        for mine, theirs in zip(getattr(case, kind), getattr(like, kind)):
            renamed[mine.id] = theirs.id
    values = case.model_dump()
    values["id"] = like.id
    for kind in _KINDS:
        for item in values[kind]:
            item["id"] = renamed.get(item["id"], item["id"])
            if item.get("addresses"):
                item["addresses"] = [renamed.get(i, i) for i in item["addresses"]]
            if item.get("for_stay"):
                item["for_stay"] = renamed.get(item["for_stay"], item["for_stay"])
    return Case.model_validate(values)


def with_ids(case: Case, version: str) -> dict[ResourceKey, dict[str, Any]]:
    """The case as a server holds it: ids assigned, references by id, other systems' additions."""
    ids = {key: f"srv-{n}" for n, key in enumerate(case_to_resources(case, version, SYSTEM))}
    return {k: server_copy(r) for k, r in case_to_resources(case, version, SYSTEM, server_ids=ids).items()}


@st.composite
def disturbed(draw: st.DrawFn, base: dict[ResourceKey, dict[str, Any]]) -> dict[ResourceKey, dict[str, Any]]:
    """``base`` with, here and there, an element dropped or made null, a list reversed, another system's
    item added, or a part of an element dropped (which may leave it empty)."""
    out = copy.deepcopy(base)
    for resource in out.values():
        names = sorted(k for k in resource if k not in ("resourceType", "identifier", "id"))
        for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)) if names else ():
            value = resource[name]
            how = draw(st.sampled_from(["drop", "null", "reverse", "pad", "hollow"]))
            if how == "drop":
                del resource[name]
            elif how == "null":
                resource[name] = None
            elif how == "hollow" and isinstance(value, dict) and value:
                del value[draw(st.sampled_from(sorted(value)))]
            elif how == "reverse" and isinstance(value, list):
                value.reverse()
            elif how == "pad" and isinstance(value, list):
                value.insert(draw(st.integers(0, len(value))), copy.deepcopy(FOREIGN_EXT))
            elif how == "pad" and isinstance(value, dict) and isinstance(value.get("coding"), list):
                value["coding"].insert(0, copy.deepcopy(FOREIGN_CODING))
    return out


def both_ways(case: Case, version: str, base: dict[ResourceKey, dict[str, Any]]) -> dict[ResourceKey, Any]:
    before = copy.deepcopy(base)
    quick = map_case(case, version, SYSTEM, base)[0]
    general = map_case(case, version, SYSTEM, base, quick=False)[0]
    assert quick == general
    assert base == before  # the bases themselves are never touched
    return quick


@pytest.mark.parametrize("version", ["R4", "R5"])
@_SETTINGS
@given(case=cases())
def test_an_unchanged_case_is_proved_unchanged_and_gives_its_bases_back(version: str, case: Case) -> None:
    built = case_to_resources(case, version, SYSTEM)
    assert both_ways(case, version, built) == built
    dressed = with_ids(case, version)
    assert both_ways(case, version, dressed) == dressed


@pytest.mark.parametrize("version", ["R4", "R5"])
@_SETTINGS
@given(case=cases(), earlier=cases(), dressed=st.booleans(), data=st.data())
def test_quick_and_general_updates_agree_over_bases_that_differ(
    version: str, case: Case, earlier: Case, dressed: bool, data: st.DataObject
) -> None:
    case = same_keys(case, earlier)
    base = with_ids(earlier, version) if dressed else case_to_resources(earlier, version, SYSTEM)
    both_ways(case, version, data.draw(disturbed(base)))


@pytest.mark.parametrize("version", ["R4", "R5"])
@_SETTINGS
@given(case=cases(), earlier=cases(), data=st.data())
def test_a_field_that_proves_it_holds_a_value_would_write_nothing_new(
    version: str, case: Case, earlier: Case, data: st.DataObject
) -> None:
    case = same_keys(case, earlier)
    bases = data.draw(disturbed(with_ids(earlier, version)))
    resources, refs, _ = map_case(case, version, SYSTEM, bases)
    plan = case_plan(case, bases)
    ctx = Ctx(version, refs, case, frozenset(k for k, _, _ in plan))  # type: ignore[arg-type]
    proved = 0
    for key, spec, entity in plan:
        for obj in (bases.get(key), resources[key]):
            if obj is None:
                continue
            for f in SPECS[spec.resource_type].shapes[version].fields:
                value = f.get(entity, ctx)
                if f.written is not None and f.written(obj, value, ctx):
                    proved += 1
                    rewritten = copy.deepcopy(obj)
                    f.write(rewritten, value, ctx)
                    assert rewritten == obj, (key, f.name)
    assert proved > 0


@pytest.mark.parametrize("version", ["R4", "R5"])
@_SETTINGS
@given(case=cases())
def test_an_unchanged_case_shares_its_bases_elements_instead_of_copying_them(version: str, case: Case) -> None:
    """Each update is a new resource, but what it does not change it takes from its base as it is
    (copying every base first was half the cost of an update)."""
    bases = with_ids(case, version)
    for key, resource in case_to_resources(case, version, SYSTEM, bases).items():
        base = bases[key]
        assert resource is not base and resource == base
        assert all(resource[name] is base[name] for name in base), key


@pytest.mark.parametrize("version", ["R4", "R5"])
@_SETTINGS
@given(case=cases(), earlier=cases(), data=st.data())
def test_an_update_over_shared_elements_is_the_update_of_a_private_copy(
    version: str, case: Case, earlier: Case, data: st.DataObject
) -> None:
    case = same_keys(case, earlier)
    bases = data.draw(disturbed(with_ids(earlier, version)))
    before = copy.deepcopy(bases)
    shared = case_to_resources(case, version, SYSTEM, bases)
    assert bases == before
    assert shared == case_to_resources(case, version, SYSTEM, copy.deepcopy(bases))
