"""The CLI on a store holding a case this version's model cannot read (stored before a rule of it):
`export` and `transitions` give the others and name it on stderr (by id only), instead of stopping."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.domain import Case
from fhir_cm.store import open_store, save_case
from tests.unreadable import SECRET_NOTE, make_unreadable

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", url)
    with open_store(url) as store:
        with store.session() as s:
            for case_id in ("c-1", "c-2", "c-3"):
                save_case(s, _case(case_id))
        make_unreadable(store, "c-2")
    return url


def _case(case_id: str) -> Case:
    return Case.model_validate(
        {
            "id": case_id,
            "programme": "health-care",
            "period": {"start": "2025-01-10"},
            "patient": {"kind": "patient", "id": f"p-{case_id}", "name": "Grace Hidden"},
            "stays": [
                {"id": "s1", "setting": "acute-hospital", "start": "2025-01-10", "end": "2025-01-20"},
                {"id": "s2", "setting": "home", "status": "in-progress", "start": "2025-01-20"},
            ],
        }
    )


def test_export_of_everything_writes_the_others_and_names_it(db: str) -> None:
    result = runner.invoke(app, ["export"])

    assert result.exit_code == 1, result.output
    bundle = json.loads(result.stdout)
    episodes = [
        e["resource"]["identifier"][0]["value"]
        for e in bundle["entry"]
        if e["resource"]["resourceType"] == "EpisodeOfCare"
    ]
    assert sorted(episodes) == ["c-1", "c-3"]
    assert "c-2" in result.stderr and "fhir-cm check" in result.stderr
    assert SECRET_NOTE not in result.output + result.stderr


def test_export_of_it_alone_is_one_line_naming_check(db: str) -> None:
    result = runner.invoke(app, ["export", "--case", "c-2"])

    assert (result.exit_code, result.stdout) == (1, "")
    assert "stored case c-2 cannot be read" in result.stderr and "fhir-cm check" in result.stderr
    assert "Traceback" not in result.stderr and SECRET_NOTE not in result.stderr


def test_transitions_lists_the_others_and_names_it(db: str) -> None:
    result = runner.invoke(app, ["transitions", "--json"])

    assert result.exit_code == 0, result.output
    assert sorted(json.loads(line)["case_id"] for line in result.stdout.splitlines()) == ["c-1", "c-3"]
    assert "c-2" in result.stderr and "fhir-cm check" in result.stderr
