"""`fhir-cm push` end to end against the real server: summary JSON, re-runs, exit codes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.synthetic import generate_cases
from tests.sync.server_state import CASE_TYPES, expected

pytestmark = pytest.mark.server


@pytest.fixture
def env(tmp_path: Path, fhir_server: str, system: str) -> dict[str, str]:
    return {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}",
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        "FHIR_CM_FHIR_BASE": fhir_server,
    }


def test_push_file_then_all_reports_counts_and_creates_nothing_twice(
    tmp_path: Path, env: dict[str, str], system: str
) -> None:
    cases = list(generate_cases(3, seed=5))
    file = tmp_path / "cases.jsonl"
    file.write_text("".join(c.model_dump_json() + "\n" for c in cases))
    total = sum(n for (t, _), n in expected(cases, system).items() if t in CASE_TYPES)
    runner = CliRunner()

    first = runner.invoke(app, ["push", str(file), "--json"], env=env)
    again = runner.invoke(app, ["push", "--all", "--json"], env=env)
    same = runner.invoke(app, ["push", str(file), "--json"], env=env)

    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout) | {"failures": []} == {
        "cases": 3,
        "created": total,
        "updated": 0,
        "unchanged": 0,
        "failed": 0,
        "conflicts": 0,
        "provenances": 3,
        "failures": [],
        "warnings": [],
        "asked": 3,
        "pushed": 3,
        "not_pushed": [],
    }
    assert "3 of 3 cases pushed" in first.stderr
    assert (again.exit_code, json.loads(again.stdout)["cases"]) == (0, 0)  # nothing pending, nothing unpushed
    assert {k: json.loads(again.stdout)[k] for k in ("asked", "pushed")} == {"asked": 0, "pushed": 0}
    assert same.exit_code == 0
    assert {k: json.loads(same.stdout)[k] for k in ("asked", "pushed")} == {"asked": 3, "pushed": 3}
    assert {k: json.loads(same.stdout)[k] for k in ("created", "updated", "unchanged")} == {
        "created": 0,
        "updated": 0,
        "unchanged": total,
    }


def test_push_needs_a_file_or_all(env: dict[str, str]) -> None:
    result = CliRunner().invoke(app, ["push"], env=env)

    assert result.exit_code == 2
    assert "FILE" in result.output
