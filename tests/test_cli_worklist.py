"""`fhir-cm worklist` on a real store (SQLite and PostgreSQL): the table with dates as the hospital wrote
them, the filters and pages, refusals naming the option (exit 2), and the same page as the API's."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner, Result

from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.domain import ProgrammeType
from fhir_cm.store import open_store, save_case
from fhir_cm.worklist import ItemKind
from tests.api.conftest import TODAY
from tests.api.test_dates_as_written import _import
from tests.api.test_worklist import CASE, as_a_hospital_wrote_it
from tests.cli_store import STORES, api_answer, case, refused_before_the_store, store_url
from tests.unreadable import SECRET_NOTE, make_unreadable

runner = CliRunner()


@pytest.fixture(
    params=[pytest.param(kind, marks=[pytest.mark.postgres] if kind == "postgres" else []) for kind in STORES]
)
def db(request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A store holding cm-1's case as a hospital wrote it (months for days), cm-2's case, a social-work
    case of cm-1's and one this version cannot read; ``FHIR_CM_DATABASE_URL`` names it."""
    with store_url(request.param, tmp_path) as url:
        monkeypatch.setenv("FHIR_CM_DATABASE_URL", url)
        with open_store(url) as store:
            _import(tmp_path, store, Settings(database_url=url, fhir_base=None), CASE, as_a_hospital_wrote_it)
            with store.session() as s:
                save_case(s, case("b", "cm-2"))
                save_case(s, case("sw", "cm-1", programme="social-work"))
                save_case(s, case("broken", "cm-2"))
            make_unreadable(store, "broken")
        yield url


MANAGER = "cm-1 Cass Manager"


def worklist(*args: str) -> Result:
    return runner.invoke(app, ["worklist", "--today", TODAY.isoformat(), *args])


def rows(result: Result) -> list[list[str]]:
    """The table's rows below its header, cut into columns (two spaces or more apart)."""
    assert result.exit_code == 0, result.output
    return [re.split(r" {2,}", line.strip()) for line in result.stdout.splitlines()[1:]]


def test_dates_a_hospital_wrote_as_a_month_are_printed_as_written(db: str) -> None:
    result = worklist("--case-manager", "cm-1", "--programme", "health-care")
    due, overdue, kind, case, manager, since, what = (list(column) for column in zip(*rows(result), strict=True))
    # The visit's due day is one the rules made (seen "2025-04", read as 04-01, + 30 days); the goal's and the
    # referral's are the months the hospital wrote.
    assert due == ["2025-05-01", "2025-05", "2025-06"]
    assert case == ["case-partial"] * 3 and manager == ["cm-1 Cass Manager"] * 3
    assert overdue == ["yes", "yes", "no"]  # the referral is due this month: not overdue
    assert kind == ["no-face-to-face", "goal-past-due", "referral-due"]
    assert since == ["2025-04", "-", "-"]  # seen "2025-04"
    assert what == [
        "No face-to-face contact for 90 days",
        "Goal not attained: Walk 200 m unaided",
        "Food referral due: Pantry",
    ]
    # No invented day: the last day of the month a date is counted by is never printed for it.
    assert "2025-05-31" not in result.stdout and "2025-06-30" not in result.stdout
    assert "2025-04-01" not in result.stdout
    assert "3 item(s), 2 overdue" in result.stderr and "case manager cm-1 on 2025-06-30" in result.stderr
    assert "Ada Example" not in result.output  # the patient is not named


def test_the_filters(db: str) -> None:
    goals = rows(worklist("--kind", "goal-past-due"))
    assert [(r[3], r[2]) for r in goals] == [
        ("b", "goal-past-due"),
        ("case-partial", "goal-past-due"),
        ("sw", "goal-past-due"),
    ]
    assert [r[3] for r in rows(worklist("--kind", "goal-past-due", "--programme", "social-work"))] == ["sw"]
    early = rows(worklist("--case-manager", "cm-1", "--due-before", "2025-05-31", "--overdue"))
    assert [(r[0], r[2]) for r in early] == [("2025-05-01", "no-face-to-face")]
    both = rows(worklist("--case-manager", "cm-1", "--kind", "referral-due", "--kind", "no-face-to-face"))
    assert [r[2] for r in both] == ["no-face-to-face", "referral-due"]
    assert rows(worklist("--case-manager", "nobody")) == []


def test_pages_and_the_next_offset(db: str) -> None:
    first = worklist("--limit", "2")
    assert len(rows(first)) == 2 and "showing 1-2; next page: --offset 2" in first.stderr
    last = worklist("--limit", "2", "--offset", "4")
    assert len(rows(last)) == 1 and "showing 5-5" in last.stderr and "next page" not in last.stderr


def test_a_case_this_version_cannot_read_is_told_by_id_not_listed(db: str) -> None:
    result = worklist()
    assert "broken" not in result.stdout and SECRET_NOTE not in result.output
    assert "1 stored case(s) this version cannot read left out of the worklist (broken)" in result.stderr
    assert "cannot read" not in worklist("--case-manager", "cm-1").stderr  # broken is cm-2's


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--kind", "everything"),
        ("--programme", "astrology"),
        ("--due-before", "2025-13-01"),
        ("--due-before", "1751241600"),
        ("--due-before", "2025-06"),
        ("--case-manager", "../cm-2"),
        ("--limit", "0"),
        ("--limit", "201"),
        ("--offset", "-1"),
        ("--today", "2025-06"),
    ],
)
def test_a_bad_filter_is_a_usage_error_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, option: str, value: str
) -> None:
    refused_before_the_store(tmp_path, monkeypatch, ["worklist", f"{option}={value}"], option)


@pytest.mark.parametrize(
    ("args", "params"),
    [
        ((), {}),
        (("--case-manager", "cm-1"), {"case_manager": "cm-1"}),
        (
            ("--kind", "goal-past-due", "--kind", "referral-due", "--overdue", "--programme", "health-care"),
            {"kind": ["goal-past-due", "referral-due"], "overdue": "true", "programme": "health-care"},
        ),
        (
            ("--due-before", "2025-06-01", "--limit", "1", "--offset", "1"),
            {"due_before": "2025-06-01", "limit": "1", "offset": "1"},
        ),
    ],
    ids=["all", "cm-1", "kinds-overdue-programme", "due-before-page"],
)
def test_the_json_is_the_apis_answer_for_the_same_store(db: str, args: tuple[str, ...], params: dict[str, Any]) -> None:
    answer = api_answer(db, TODAY, "/api/v1/worklist", params)
    printed = worklist("--json", *args)
    assert printed.exit_code == 0, printed.output
    assert json.loads(printed.stdout) == answer
    assert answer["items"], "two empty pages agreeing would prove nothing"


def test_the_help_lists_every_kind_and_programme() -> None:
    """The choices are written out in the command (importing the enums would slow every `fhir-cm` call):
    they must be the enums' own, in their order."""
    text = runner.invoke(app, ["worklist", "--help"], env={"COLUMNS": "200", "TERM": "dumb"}).output
    assert f"--kind [{'|'.join(ItemKind)}]" in text
    assert f"--programme [{'|'.join(ProgrammeType)}]" in text
