"""`fhir-cm caseload` on a real store (SQLite and PostgreSQL): per case manager, a follow-up the hospital
wrote as due in a month printed as written, the filters, refusals naming the option (exit 2), and the
same answer as the API's."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.store import open_store, save_case
from tests.api.conftest import TODAY
from tests.api.test_dates_as_written import _import
from tests.api.test_follow_ups_as_written import FOLLOWED, due_in_july
from tests.cli_store import STORES, api_answer, case, refused_before_the_store, store_url
from tests.unreadable import SECRET_NOTE, make_unreadable

runner = CliRunner()
ON = TODAY.isoformat()


@pytest.fixture(
    params=[pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else []) for kind in STORES]
)
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """cm-1's case whose follow-up the hospital wrote as due "2025-07", a social-work case of cm-1's, two
    cases of cm-2's (one this version cannot read) and one of another server's cm-1."""
    with store_url(request.param, tmp_path) as url:
        monkeypatch.setenv("FHIR_CM_DATABASE_URL", url)
        with open_store(url) as store:
            _import(tmp_path, store, Settings(database_url=url, fhir_base=None), FOLLOWED, due_in_july)
            outside = {"kind": "practitioner", "id": "cm-1", "server": "https://other.example/fhir"}
            with store.session() as s:
                save_case(s, case("sw", "cm-1", programme="social-work"))
                save_case(s, case("b", "cm-2"))
                save_case(s, case("broken", "cm-2"))
                save_case(s, case("elsewhere", "cm-1", case_manager=outside))
            make_unreadable(store, "broken")
        yield url


def caseload(*args: str) -> Result:
    result = runner.invoke(app, ["caseload", "--on", ON, *args])
    assert result.exit_code == 0, result.output
    return result


def test_a_follow_up_due_in_a_month_is_printed_as_written(db: str) -> None:
    result = caseload("--case-manager", "cm-1")
    heading, header, *rows = result.stdout.splitlines()
    assert heading.startswith("cm-1: 2 open case(s) (limit 20); never seen: 1")
    assert header.split()[:3] == ["case", "programme", "status"]
    cells = {row.split()[0]: row.split() for row in rows}
    assert cells["case-followed"][1:] == ["health-care", "active", "never", "-", "2025-07", "0"]
    assert cells["sw"][1:] == ["social-work", "active", "2025-06-29", "1", "-", "0"]
    assert "2025-07-31" not in result.stdout  # the day it is counted by, which nobody set
    assert "elsewhere" not in result.stdout  # another server's cm-1 is not this one
    assert "Ada Example" not in result.output


def test_every_case_manager_and_the_filters(db: str) -> None:
    headings = [line for line in caseload().stdout.splitlines() if not line.startswith(" ")]
    assert [h.split(" open case")[0] for h in headings] == [
        "cm-1: 2",
        "cm-2: 1",
        "cm-1 (https://other.example/fhir): 1",
    ]
    social = caseload("--programme", "social-work").stdout
    assert "sw" in social and "case-followed" not in social
    before = caseload("--on", "2025-04-30", "--case-manager", "cm-1").stdout  # case-followed began in May
    assert "case-followed" not in before and before.startswith("cm-1: 1 open case(s)")


def test_a_case_this_version_cannot_read_is_told_by_id_not_listed(db: str) -> None:
    result = caseload("--case-manager", "cm-2")
    assert "broken" not in result.stdout and SECRET_NOTE not in result.output
    assert "1 stored case(s) this version cannot read left out of the caseload (broken)" in result.stderr
    assert "cannot read" not in caseload("--case-manager", "cm-1").stderr


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--on", "2025-06"),
        ("--on", "2025-02-30"),
        ("--programme", "astrology"),
        ("--case-manager", "../cm-2"),
    ],
)
def test_a_bad_value_is_a_usage_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, value: str
) -> None:
    refused_before_the_store(tmp_path, monkeypatch, ["caseload", f"{option}={value}"], option)


@pytest.mark.parametrize(
    ("args", "params"),
    [
        ((), {"on": ON}),
        (("--programme", "health-care"), {"on": ON, "programme": "health-care"}),
        (("--on", "2025-07-31"), {"on": "2025-07-31"}),
    ],
    ids=["all", "programme", "later-day"],
)
def test_the_json_is_the_apis_answer_for_the_same_store(db: str, args: tuple[str, ...], params: dict[str, Any]) -> None:
    answer = api_answer(db, TODAY, "/api/v1/caseload", params)
    assert json.loads(caseload("--json", *args).stdout) == answer
    assert answer["managers"], "two empty caseloads agreeing would prove nothing"
