"""`fhir-cm transitions`: one JSON object per recorded transition, or a table."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.domain import Case, Party, Period, Stay
from fhir_cm.store import open_store, record_transitions, save_case

D = dt.date


@pytest.fixture
def database(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    stays = [
        Stay(id="s1", setting="acute-hospital", start=D(2024, 3, 1), end=D(2024, 3, 5), discharge_disposition="snf"),
        Stay(
            id="s2",
            setting="skilled-nursing",
            start=D(2024, 3, 5),
            end=D(2024, 3, 20),
            provider=Party(kind="organisation", id="snf-1"),
        ),
        Stay(id="s3", setting="acute-hospital", start=D(2024, 3, 25), end=D(2024, 3, 28), discharge_disposition="home"),
    ]
    patient = Party(kind="patient", id="p1")
    cases = [
        Case(id="case-a", programme="health-care", period=Period(start=D(2024, 2, 1)), patient=patient, stays=stays),
        Case(
            id="case-b", programme="health-care", period=Period(start=D(2024, 2, 1)), patient=patient, stays=stays[:2]
        ),
    ]
    with open_store(url) as store, store.session() as s:
        for case in cases:
            save_case(s, case)
        record_transitions(s, "case-a", cases[0].transitions, source_encounters={"s1": "enc-1", "s2": "enc-2"})
        record_transitions(s, "case-b", cases[1].transitions)
    return url


def run(database: str, *args: str) -> list[str]:
    result = CliRunner().invoke(app, ["transitions", *args], env={"FHIR_CM_DATABASE_URL": database})
    assert result.exit_code == 0, result.output
    return result.stdout.splitlines()


def test_json_is_one_object_per_transition_with_a_boolean_readmission(database: str) -> None:
    rows = [json.loads(line) for line in run(database, "--json", "--case", "case-a")]
    assert [(r["from_setting"], r["to_setting"], r["date"]) for r in rows] == [
        ("acute-hospital", "skilled-nursing", "2024-03-05"),
        ("skilled-nursing", "acute-hospital", "2024-03-20"),  # the day the SNF stay ended
        ("acute-hospital", "home", "2024-03-28"),
    ]
    assert [r["readmission"] for r in rows] == [False, True, False]
    assert all(r["case_id"] == "case-a" for r in rows)
    assert rows[0]["discharge_disposition"] == "snf" and rows[0]["source_encounter"] == "enc-1"
    assert {"follow_up_due", "receiving_provider", "from_stay", "to_stay"} <= set(rows[0])


def test_without_case_every_case_is_listed_and_the_table_is_readable(database: str) -> None:
    assert {json.loads(line)["case_id"] for line in run(database, "--json")} == {"case-a", "case-b"}
    table = run(database)
    assert table[0].split()[:3] == ["case", "date", "from"]
    assert len(table) == 1 + 4
    assert table[2].split()[-1] == "yes"  # case-a's readmission


def test_the_table_columns_line_up_with_ids_longer_than_twenty_characters(tmp_path: Path) -> None:
    # Generated and server ids have 32 characters: each row's columns started past the header's.
    url = f"sqlite:///{tmp_path / 'long.db'}"
    stays = [
        Stay(id="h", setting="acute-hospital", start=D(2024, 5, 1), end=D(2024, 5, 4), discharge_disposition="home")
    ]
    case = Case(
        id="e742e93fb95f68131b63a92109c76a80",
        programme="health-care",
        period=Period(start=D(2024, 2, 1)),
        patient=Party(kind="patient", id="p1"),
        stays=stays,
    )
    with open_store(url) as store, store.session() as s:
        save_case(s, case)
    header, row = run(url)
    for column in ("date", "from", "to", "disposition", "follow-up", "readmission"):
        start = header.index(column)
        assert row[start - 1] == " " and row[start] != " ", (column, header, row)


def test_moves_the_tracker_has_not_seen_are_listed_from_the_stays(tmp_path: Path) -> None:
    """A case imported or entered through the API has stays but no recorded transitions yet."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    stays = [
        Stay(id="h", setting="acute-hospital", start=D(2024, 5, 1), end=D(2024, 5, 4), discharge_disposition="home"),
        Stay(id="h2", setting="acute-hospital", start=D(2024, 5, 20), end=D(2024, 5, 22), discharge_disposition="home"),
    ]
    case = Case(
        id="case-c",
        programme="health-care",
        period=Period(start=D(2024, 4, 1)),
        patient=Party(kind="patient", id="p9"),
        stays=stays,
    )
    with open_store(url) as store, store.session() as s:
        save_case(s, case)
    rows = [json.loads(line) for line in run(url, "--json")]
    assert [(r["from_setting"], r["to_setting"], r["date"], r["readmission"]) for r in rows] == [
        ("acute-hospital", "home", "2024-05-04", False),
        ("home", "acute-hospital", "2024-05-20", True),
        ("acute-hospital", "home", "2024-05-22", False),
    ]
    assert all(r["recorded_at"] is None and r["case_id"] == "case-c" for r in rows)


def test_recorded_moves_keep_their_source_encounter(database: str) -> None:
    rows = [json.loads(line) for line in run(database, "--case", "case-a", "--json")]
    assert rows[0]["source_encounter"] == "enc-1" and rows[0]["recorded_at"] is not None
