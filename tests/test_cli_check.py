"""`fhir-cm check`: data already stored that breaks a rule of what can be true is reported, never dropped."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.domain import Case
from fhir_cm.store import add_quarantine, get_case, open_store, save_case

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'check.db'}"
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", url)
    return url


def _case(case_id: str, **fields: object) -> Case:
    return Case.model_validate(
        {
            "id": case_id,
            "programme": "health-care",
            "period": {"start": "2025-01-10"},
            "patient": {"kind": "patient", "id": f"p-{case_id}", "name": "Grace Hidden"},
            **fields,
        }
    )


BAD = _case(
    "bad",
    status="referred",
    period={"start": "2025-01-10", "end": "2025-03-01"},  # an open case that ended
    contacts=[{"id": "k1", "date": "2031-01-01", "mode": "face-to-face", "note": "confidential note"}],
    stays=[
        {"id": "s1", "setting": "acute-hospital", "start": "2025-02-01", "end": "2025-02-10"},
        {"id": "s2", "setting": "acute-hospital", "start": "2025-02-05", "end": "2025-02-08"},
    ],
)


def test_check_reports_every_breach_and_keeps_the_data(db: str) -> None:
    with open_store(db) as store, store.session() as s:
        save_case(s, _case("good"))
        save_case(s, BAD)  # as an import from a file stores what it reads
        add_quarantine(s, source="https://fhir.example.test", raw={"resourceType": "Encounter"}, reason="test")

    result = runner.invoke(app, ["check"])

    assert result.exit_code == 1
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("case bad  ") for line in lines)
    assert {line.split()[2].rstrip(":") for line in lines} == {"contacts.0.date", "stays.1.start", "period.end"}
    assert "checked 2 cases: 1 break a rule (3 breaches); 1 resources in quarantine" in result.stderr
    for phi in ("Grace Hidden", "confidential note", "2031"):
        assert phi not in result.stdout + result.stderr
    with open_store(db) as store, store.session(read_only=True) as s:
        assert get_case(s, "bad") == BAD  # reported, not changed or dropped


def test_check_json_lines_and_a_clean_store(db: str) -> None:
    with open_store(db) as store, store.session() as s:
        save_case(s, BAD)
    rows = [json.loads(line) for line in runner.invoke(app, ["check", "--json"]).stdout.splitlines()]
    assert {(r["case_id"], r["rule"]) for r in rows} == {
        ("bad", "future-date"),
        ("bad", "overlapping-stays"),
        ("bad", "open-case-ended"),
    }
    assert next(r for r in rows if r["rule"] == "overlapping-stays")["entity"] == "s2"


def test_check_of_a_clean_store_exits_0(db: str) -> None:
    with open_store(db) as store, store.session() as s:
        save_case(s, _case("good"))
    result = runner.invoke(app, ["check"])
    assert (result.exit_code, result.stdout) == (0, "")
    assert "checked 1 cases: 0 break a rule" in result.stderr


def test_a_stored_case_this_version_cannot_read_is_listed_not_a_crash(db: str) -> None:
    """A case stored before a rule of the model (here: '..' refused as an id) is what check is for."""
    from sqlalchemy import update

    from fhir_cm.store._tables import CaseRow

    old = _case("old", contacts=[{"id": "k1", "date": "2025-02-01", "mode": "face-to-face", "note": "confidential"}])
    data = old.model_dump(mode="json")
    data["contacts"][0]["id"] = ".."
    with open_store(db) as store, store.session() as s:
        save_case(s, _case("good"))
        save_case(s, old)
        s.execute(update(CaseRow).where(CaseRow.case_id == "old").values(data=data))

    result = runner.invoke(app, ["check", "--json"])

    assert result.exit_code == 1, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert [(r["case_id"], r["rule"], r["field"]) for r in rows] == [("old", "unreadable", "contacts.0.id")]
    assert "checked 2 cases: 1 break a rule (1 breaches)" in result.stderr
    for phi in ("Grace Hidden", "confidential", "p-old"):
        assert phi not in result.stdout + result.stderr
