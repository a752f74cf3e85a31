"""Screening reads a reference as one to the server's own patient only when it is relative or absolute
at the server's base (against sekmet and HAPI, both of which keep an absolute reference as written): an
Encounter or Condition about ``https://other.example/fhir/Patient/<id>`` is another person's, and does
not count toward the local ``Patient/<id>``'s eligibility, by Bulk export, by search, or from files;
one absolute at the server's own base does."""

# ruff: noqa: F811 (the store fixture, imported)
from __future__ import annotations

import datetime as dt
import uuid
from pathlib import Path
from typing import Any

import orjson
import pytest

from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.identify import fact_of, load_rules, members_of, screen_files, screen_population
from fhir_cm.store import Store

from .population import condition, encounter, patient, transaction
from .test_screening_members import panel
from .test_screening_server import EXPORT_SETTINGS, store  # noqa: F401
from .test_screening_server import ours as reasons

pytestmark = pytest.mark.server
TODAY = dt.date.today()
OTHER = "https://other.example/fhir"


def about(resource: dict[str, Any], subject: str) -> dict[str, Any]:
    return {**resource, "subject": {"reference": subject}}


def foreign(resource: dict[str, Any]) -> bool:
    subject = resource.get("subject") or {}
    return str(subject.get("reference", "")).startswith(OTHER)


async def write_apart(fhir: AsyncFhirClient, resources: list[dict[str, Any]]) -> None:
    """Those about another server's patient in a transaction of their own: one holding the local
    ``Patient/<id>`` too makes HAPI read a reference to another server's of that id as to it (and
    write it relative)."""
    await fhir.transaction(transaction([r for r in resources if not foreign(r)])["entry"])
    await fhir.transaction(transaction([r for r in resources if foreign(r)])["entry"])


def seeded(prefix: str, base: str) -> list[dict[str, Any]]:
    """``-elsewhere``: one admission of theirs, and another server's Patient of the same id with a second
    admission and a high-risk condition (each would make them a candidate). ``-here``: one admission,
    and a second naming them absolutely at the server's own base (two: a candidate)."""
    elsewhere, here = f"{prefix}-elsewhere", f"{prefix}-here"
    day = lambda n: TODAY - dt.timedelta(days=n)  # noqa: E731
    return [
        patient(elsewhere),
        encounter(elsewhere, "IMP", day(90), 3, rid=f"{elsewhere}-r1"),
        about(encounter(elsewhere, "IMP", day(40), 2, rid=f"{elsewhere}-r2"), f"{OTHER}/Patient/{elsewhere}"),
        about(condition(elsewhere, "C34.90", rid=f"{elsewhere}-r3"), f"{OTHER}/Patient/{elsewhere}"),
        patient(here),
        encounter(here, "IMP", day(90), 3, rid=f"{here}-r1"),
        about(encounter(here, "IMP", day(40), 2, rid=f"{here}-r2"), f"{base}/Patient/{here}"),
    ]


@pytest.mark.parametrize("use_export", [True, False], ids=["export", "search"])
async def test_another_servers_patients_stays_and_conditions_do_not_count_for_the_local_patient(
    fhir_server: str, store: Store, use_export: bool
) -> None:
    prefix = f"frn-{uuid.uuid4().hex[:8]}"
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as fhir:
        resources = seeded(prefix, fhir.base_url)
        # Those about another server's patient apart: a transaction holding the local Patient/<id> too
        # makes HAPI read a reference to another server's of that id as to it (and write it relative).
        await write_apart(fhir, resources)
        written = await fhir.read("Encounter", f"{prefix}-elsewhere-r2")
        assert written["subject"]["reference"] == f"{OTHER}/Patient/{prefix}-elsewhere"  # kept as written
        report = await screen_population(store, fhir, use_export=use_export, as_of=TODAY, bulk_settings=EXPORT_SETTINGS)
    assert report.source == ("export" if use_export else "search")
    # Another server's patient's stay and condition: none of the local patient's (one admission is no reason).
    # The same patient named absolutely at the server's own base: theirs (two admissions).
    assert reasons(store, fhir.base_url, prefix) == {f"{prefix}-here": {"frequent-admissions"}}


async def test_files_are_read_as_the_configured_servers_export(store: Store, tmp_path: Path) -> None:
    """NDJSON files are an export of the server named: a reference relative or absolute at its base is
    its patient's (Bulk Data lets an export write either), one at another base another server's."""
    prefix = f"frf-{uuid.uuid4().hex[:8]}"
    server = "https://ehr.example/fhir"
    resources = seeded(prefix, server)
    relative = f"{prefix}-relative"
    day = lambda n: TODAY - dt.timedelta(days=n)  # noqa: E731
    resources += [
        patient(relative),
        encounter(relative, "IMP", day(90), 3, rid=f"{relative}-r1"),
        encounter(relative, "IMP", day(40), 2, rid=f"{relative}-r2"),
    ]
    file = tmp_path / "export.ndjson"
    file.write_bytes(b"\n".join(orjson.dumps(r) for r in resources) + b"\n")

    await screen_files(store, server, [file], as_of=TODAY)

    assert reasons(store, server, prefix) == {
        relative: {"frequent-admissions"},
        f"{prefix}-here": {"frequent-admissions"},
    }


def test_another_servers_member_or_parent_is_none_of_the_servers() -> None:
    """A panel's ``hasMember`` and an Encounter's ``partOf`` name the server's own resource only when
    relative or at its base: another server's ``Observation/m`` is not read as the local member m."""
    server = "https://ehr.example/fhir"
    rules = load_rules()
    members = [f"{OTHER}/Observation/m1", "Observation/m2", f"{server}/Observation/m3"]
    the_panel = panel("p", "s1", [])
    the_panel["hasMember"] = [{"reference": m} for m in members]
    assert members_of(the_panel, {server}) == ["m2", "m3"]
    stay = encounter("p", "IMP", TODAY, 1, rid="e1")
    for parent, kept in ((f"{OTHER}/Encounter/e0", []), (f"{server}/Encounter/e0", ["part-of|e0"])):
        fact = fact_of({**stay, "partOf": {"reference": parent}}, rules, {server})
        assert fact is not None and [c for c in fact.codes if c.startswith("part-of|")] == kept
