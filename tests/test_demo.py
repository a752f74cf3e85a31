"""`fhir-cm demo`: the walk through the cycle, the installed command end to end, and the real server."""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import socket
import subprocess
import sys
import uuid
from collections import Counter
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from typer.testing import CliRunner

from fhir_cm.caseload import compute_caseload
from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.demo import STAGES, pick_cases, render_summary, run_demo, shows_post_acute_pathway, walk_case
from fhir_cm.domain import CareSetting, Case, CaseStatus, Plausibility, allowed_referral_moves, case_breaches
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.mapping import case_to_resources
from fhir_cm.store import list_cases, list_outbox, list_transitions, open_store
from fhir_cm.synthetic import generate_cases
from tests.servers import RunningServer
from tests.sync.server_state import server_state

FHIR_CM = Path(sys.executable).with_name("fhir-cm")


# --- the walk ----------------------------------------------------------------------------------------


def _journeys() -> Iterator[Case]:
    for seed in (1, 7, 2024):
        yield from generate_cases(40, seed)


@pytest.mark.parametrize("final", list(_journeys()), ids=lambda c: c.id[:8])
def test_the_walk_ends_at_the_journey_through_valid_steps_in_cycle_order(final: Case) -> None:
    steps = list(walk_case(final))

    assert steps[-1].case == final
    assert [s.stage for s in steps] == sorted((s.stage for s in steps), key=STAGES.index)
    assert steps[0].case.status_history == [final.status_history[0].model_copy(update={"end": None})]
    for before, after in pairwise(steps):
        assert after.case != before.case  # every step is a change (a new revision when saved)
        Case.model_validate(after.case.model_dump())  # and a valid case on its own
        assert after.case.status_history[: len(before.case.status_history) - 1] == before.case.status_history[:-1]
        moved = {r.id: r.status for r in before.case.referrals}
        for referral in after.case.referrals:
            was = moved.get(referral.id)
            assert was is None or was == referral.status or referral.status in allowed_referral_moves(was)
    assert ("closed" in {s.stage for s in steps}) == (final.status is CaseStatus.CLOSED)


@pytest.mark.parametrize("n", [1, 2, 5, 8])
def test_the_handful_always_shows_the_whole_cycle(n: int) -> None:
    cases = pick_cases(n)

    assert len(cases) == len({c.id for c in cases}) == n
    assert any(c.status is CaseStatus.CLOSED and shows_post_acute_pathway(c) for c in cases)
    assert [c.id for c in pick_cases(n)] == [c.id for c in cases]
    assert {c.id for c in cases} <= {c.id for c in pick_cases(n + 3)}


def test_cases_below_one_is_refused_with_one_line() -> None:
    result = CliRunner().invoke(app, ["demo", "--cases", "0"])

    assert result.exit_code == 2
    assert result.output.strip().splitlines() == ["fhir-cm: error: --cases must be at least 1 (got 0)"]


# --- the installed command, end to end ---------------------------------------------------------------


def _run(workdir: Path, *args: str, extra_env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """``fhir-cm demo`` as a newcomer runs it: the installed script, a fresh directory, no FHIR_CM_* set."""
    assert FHIR_CM.exists(), f"the fhir-cm script is not installed next to {sys.executable}"
    # PYTHONPATH too: run from a checkout's src (PYTHONPATH=src), the script must run that code, not
    # the one it was installed from.
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env |= {"HOME": str(workdir)} | (extra_env or {})
    return subprocess.run(
        [str(FHIR_CM), "demo", *args], cwd=workdir, env=env, capture_output=True, text=True, timeout=300, check=False
    )


@pytest.fixture(scope="module")
def embedded(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, subprocess.CompletedProcess[str], subprocess.CompletedProcess[str]]:
    """A fresh working directory where the demo ran twice with --json."""
    workdir = tmp_path_factory.mktemp("demo")
    first = _run(workdir, "--json")
    second = _run(workdir, "--json")
    return workdir, first, second


def _summary(result: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return json.loads(result.stdout)


def test_demo_on_embedded_defaults_walks_the_cases_into_the_store(embedded: Any) -> None:
    workdir, first, _ = embedded
    summary = _summary(first)
    ids = [c["case_id"] for c in summary["cases"]]

    assert (workdir / "fhir-cm.db").is_file() and summary["store_file"] == str((workdir / "fhir-cm.db").resolve())
    with open_store(f"sqlite:///{workdir / 'fhir-cm.db'}") as store, store.session(read_only=True) as s:
        stored = {c.id: c for c in list_cases(s)}
        transitions = list_transitions(s)
        outbox = [item for case_id in ids for item in list_outbox(s, case_id=case_id)]
    assert sorted(stored) == sorted(ids) and len(ids) == 5
    assert any(c.status is CaseStatus.CLOSED and len(c.status_history) >= 3 for c in stored.values())
    assert all(len(c.status_history) >= 2 for c in stored.values())
    assert {(t.from_setting, t.to_setting) for t in transitions} >= {
        (CareSetting.ACUTE_HOSPITAL, CareSetting.SKILLED_NURSING)
    }
    assert {t.case_id for t in outbox} == set(ids)
    for walk in summary["cases"]:
        case = stored[walk["case_id"]]
        assert walk["walked"] is True
        assert walk["status"] == case.status.value
        assert walk["status_history"] == [h.status.value for h in case.status_history]
        assert walk["revision"] == walk["saves"] >= len(walk["stages"])  # one revision per saved step
        assert walk["stages"][:2] == ["identified", "enrolled"]
        assert walk["stages"] == [stage for stage in STAGES if stage in walk["stages"]]
        assert walk["stages"][-1] == ("closed" if case.status is CaseStatus.CLOSED else "evaluated")
        assert walk["transitions"] == len(case.transitions)
    assert len(summary["transitions"]) == len(transitions)
    assert summary["outbox"] == {
        status: sum(item.status.value == status for item in outbox) for status in summary["outbox"]
    }
    open_per_manager = Counter(c.case_manager.id for c in stored.values() if c.is_open and c.case_manager)
    assert {m["case_manager"]: m["open_cases"] for m in summary["caseload"]} == open_per_manager
    today = dt.date.fromisoformat(summary["today"])
    assert today == dt.date.today()  # the journeys are dated up to the day the demo runs
    assert summary["caseload"] == json.loads(
        json.dumps([m.model_dump(mode="json") for m in compute_caseload(stored.values(), on=today, limit=20)])
    )
    assert all(m["case_manager_name"] for m in summary["caseload"])
    for case in stored.values():
        assert case_breaches(case, Plausibility(today=today)) == [], case.id
    assert {o["programme"] for o in summary["outcomes"]} == {c.programme.value for c in stored.values()}
    assert summary["server"] is None


def test_demo_writes_a_valid_export_bundle_of_the_cases(embedded: Any) -> None:
    workdir, first, _ = embedded
    summary = _summary(first)
    data = json.loads((workdir / "fhir-cm-demo" / "export.json").read_text())

    bundle = Bundle.model_validate(data)
    assert bundle.type == "collection"
    types = Counter(e["resource"]["resourceType"] for e in data["entry"])
    assert summary["export_resources"] == dict(types)
    episodes = {
        e["resource"]["identifier"][0]["value"]
        for e in data["entry"]
        if e["resource"]["resourceType"] == "EpisodeOfCare"
    }
    assert episodes == {c["case_id"] for c in summary["cases"]}


def test_demo_with_json_prints_the_readable_summary_on_stderr(embedded: Any) -> None:
    _, first, _ = embedded
    text = first.stderr

    for heading in (
        "Caseload on",
        "Outcomes",
        "Transitions recorded",
        "What it wrote, and where",
        "See them in the API",
    ):
        assert heading in text
    assert "fhir-cm-demo/export.json" in text and "fhir-cm serve" in text and "/fhir/CarePlan" in text
    assert "acute-hospital → skilled-nursing" in text
    assert "  outbox      5 pending (push them: fhir-cm push --all --fhir-base URL)" in text.splitlines()


def test_the_summary_goes_to_stdout_and_the_files_into_the_folder_it_names(tmp_path: Path) -> None:
    result = _run(tmp_path)

    assert result.returncode == 0, result.stderr
    out, err = result.stdout, result.stderr
    for heading in (
        "dated up to",
        "Caseload on",
        "Outcomes",
        "Transitions recorded",
        "What it wrote, and where",
        "See them in the API",
    ):
        assert heading in out and heading not in err
    assert err.strip() and "identified" in err  # progress, step by step
    folder = tmp_path / "fhir-cm-demo"
    assert f"folder      {folder.resolve()}" in out and str((folder / "export.json").resolve()) in out
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith("fhir-cm.db")} == {"fhir-cm-demo"}
    assert [p.name for p in folder.iterdir()] == ["export.json"]
    # Case managers by name, with the full id the API and `apikey create` take (never a prefix).
    rows = [line.strip() for line in out.splitlines() if "open case" in line and "longest since face-to-face" in line]
    managers = {}
    for row in rows:
        name, rest = row.split(" (", 1)
        managers[rest.split(")")[0]] = name
    assert managers and all(len(i) == 32 and len(n.split()) == 2 for i, n in managers.items())
    (practitioner,) = re.findall(r"--practitioner ([0-9a-f]+)", out)
    assert practitioner in managers  # the printed case-manager key is for someone with open cases

    elsewhere = tmp_path / "elsewhere"
    moved = _run(tmp_path, "--out", str(elsewhere))
    assert moved.returncode == 0 and (elsewhere / "export.json").is_file()


def _shape(summary: dict[str, Any]) -> dict[str, Any]:
    """What the same seed must reproduce: cases, steps, and moves — without the dates and paths."""
    return {
        "cases": [
            {k: c[k] for k in ("case_id", "programme", "status", "stages", "saves", "status_history")}
            for c in summary["cases"]
        ],
        "moves": [(t["case_id"], t["from_setting"], t["to_setting"], t["readmission"]) for t in summary["transitions"]],
        "open": [
            (m["case_manager"], m["case_manager_name"], m["open_cases"], m["max_days_since_face_to_face"])
            for m in summary["caseload"]
        ],
        "resources": summary["export_resources"],
    }


def test_the_same_seed_gives_the_same_journeys_dated_up_to_the_day_given(tmp_path: Path) -> None:
    def demo(name: str, today: dt.date) -> dict[str, Any]:
        settings = Settings(database_url=f"sqlite:///{tmp_path / name / 'fhir-cm.db'}")
        (tmp_path / name).mkdir()
        summary = run_demo(settings, cases=3, today=today, out_dir=tmp_path / name / "out")
        assert f"dated up to {today}" in render_summary(summary)
        return json.loads(summary.model_dump_json())

    now = dt.date.today()
    first, again = demo("a", dt.date(2025, 6, 30)), demo("b", dt.date(2025, 6, 30))
    later = demo("c", now)

    assert _shape(first) == _shape(again) == _shape(later)
    dates = lambda s: [t["date"] for t in s["transitions"]]  # noqa: E731
    assert dates(first) == dates(again)
    shift = now - dt.date(2025, 6, 30)
    assert [dt.date.fromisoformat(d) + shift for d in dates(first)] == [dt.date.fromisoformat(d) for d in dates(later)]
    assert max(dt.date.fromisoformat(d) for d in dates(later)) > now - dt.timedelta(days=180)  # recent, not frozen


@pytest.mark.parametrize("today", ["1850-01-01", "0001-01-01", "2999-01-01", "9999-12-31"])
def test_a_today_whose_journeys_the_store_would_refuse_is_refused(tmp_path: Path, today: str) -> None:
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'fhir-cm.db'}"}
    result = CliRunner().invoke(
        app, ["demo", "--cases", "1", "--today", today, "--out", str(tmp_path / "out")], env=env
    )
    assert result.exit_code == 1 and "the demo's today must be between" in result.stderr, result.output
    assert not (tmp_path / "fhir-cm.db").exists()  # refused before the store is opened


def test_closure_reasons_fit_the_journeys() -> None:
    for case in pick_cases(8):
        reason = case.status_history[-1].reason or ""
        if "long-term care" in reason:
            assert any(t.to_setting is CareSetting.LONG_TERM_CARE for t in case.transitions), case.id


def test_running_the_demo_twice_creates_no_duplicates(embedded: Any) -> None:
    workdir, first, second = embedded
    before, after = _summary(first), _summary(second)

    assert [c["case_id"] for c in after["cases"]] == [c["case_id"] for c in before["cases"]]
    assert all(c["walked"] is False for c in after["cases"])
    assert [c["revision"] for c in after["cases"]] == [c["revision"] for c in before["cases"]]
    assert after["transitions"] == before["transitions"]
    assert after["outbox"] == before["outbox"]
    assert after["export_resources"] == before["export_resources"]
    with open_store(f"sqlite:///{workdir / 'fhir-cm.db'}") as store, store.session(read_only=True) as s:
        assert len(list_cases(s)) == len(before["cases"])


def test_an_unreachable_server_fails_with_one_line_before_writing_anything(tmp_path: Path) -> None:
    store = tmp_path / "fhir-cm.db"
    with socket.socket() as sock:  # a port nobody listens on: bound, never listening
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        result = CliRunner().invoke(
            app,
            ["demo", "--fhir-base", f"http://127.0.0.1:{port}/fhir"],
            env={"FHIR_CM_DATABASE_URL": f"sqlite:///{store}"},
        )

    assert result.exit_code == 75  # as every command that cannot reach its server: run it again later
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert (
        result.output.strip().splitlines()[-1].startswith(f"fhir-cm: error: FHIR server http://127.0.0.1:{port}/fhir")
    )
    assert not store.exists()


def test_a_base_that_is_no_fhir_server_fails_for_good_not_to_run_again(tmp_path: Path, sekmet: RunningServer) -> None:
    store = tmp_path / "fhir-cm.db"
    result = CliRunner().invoke(
        app, ["demo", "--fhir-base", sekmet.root_url], env={"FHIR_CM_DATABASE_URL": f"sqlite:///{store}"}
    )

    assert result.exit_code == 1, result.output
    assert f"fhir-cm: error: FHIR server {sekmet.root_url} not usable: GET metadata → 404" in result.output
    assert not store.exists()


# --- against the real test server --------------------------------------------------------------------


@pytest.mark.server
async def test_demo_syncs_to_the_server_and_reads_the_same_cases_back(tmp_path: Path, fhir_server: str) -> None:
    system = f"urn:fhir-cm:test:{uuid.uuid4().hex}"
    extra = {"FHIR_CM_IDENTIFIER_SYSTEM": system}

    first_run = _run(tmp_path, "--fhir-base", fhir_server, "--json", extra_env=extra)
    # Again, for fewer cases (a subset of the first run's): pushed unchanged, nothing created twice.
    again_run = _run(tmp_path, "--fhir-base", fhir_server, "--cases", "2", "--json", extra_env=extra)
    first, again = _summary(first_run), _summary(again_run)

    with open_store(f"sqlite:///{tmp_path / 'fhir-cm.db'}") as store, store.session(read_only=True) as s:
        cases = list_cases(s)
    expected = Counter((k.type, k.value) for c in cases for k in case_to_resources(c, "R4", system))
    expected.update(("Patient", c.patient.id) for c in cases)
    async with AsyncFhirClient(fhir_server, enforce_capabilities=False) as client:
        state = await server_state(client, system)
    assert len(cases) == len(first["cases"]) == 5
    assert state.counts == expected  # every resource of every case, exactly once
    assert state.dangling() == []
    for summary in (first, again):
        server = summary["server"]
        assert server["matched"] is True, server["differences"]
        assert (server["duplicates"], server["missing"], server["push"]["failed"]) == (0, 0, 0)
        assert server["found"] == server["expected"]
    assert sum(first["server"]["found"].values()) == sum(expected.values())
    assert first["server"]["push"]["created"] > 0
    assert (again["server"]["push"]["created"], again["server"]["push"]["updated"]) == (0, 0)
    assert "every case read back from the server equals the case in the store" in again_run.stderr
    # Every row is pushed: the outbox line says so and no longer tells to push them.
    (outbox,) = [line for line in again_run.stderr.splitlines() if line.strip().startswith("outbox ")]
    assert outbox.split() == ["outbox", f"{sum(again['outbox'].values())}", "done"]


@pytest.mark.server
def test_additions_the_pull_already_pushed_are_said_to_be_pushed(tmp_path: Path, sekmet: RunningServer) -> None:
    # Twelve cases: the pull's tracker adds follow-ups (pushed by the pull at once) and team members.
    extra = {"FHIR_CM_IDENTIFIER_SYSTEM": f"urn:fhir-cm:test:{uuid.uuid4().hex}"}
    result = _run(tmp_path, "--fhir-base", sekmet.base_url, "--cases", "12", "--json", extra_env=extra)
    server = _summary(result)["server"]

    by_pull = server["pull"]["follow_ups"]["on_server"]
    assert by_pull, result.stderr  # the case this test is about: the pull pushed the tracker's additions
    additions = [line for line in result.stderr.splitlines() if "tracker's additions" in line]
    assert len(additions) == 2, result.stderr  # the progress line and the summary's
    for line in additions:
        cases = "1 case" if len(by_pull) == 1 else f"{len(by_pull)} cases"
        assert f"{cases} already pushed by the pull" in line, line
        assert "0 cases:" not in line, line


def test_a_server_name_that_does_not_resolve_is_named_with_what_happened(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["demo", "--fhir-base", "http://no-such-host.invalid/fhir"],
        env={"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'fhir-cm.db'}"},
    )

    assert result.exit_code == 75, result.output
    assert (
        result.output.strip()
        .splitlines()[-1]
        .endswith("GET metadata → network error (ConnectError): the name no-such-host.invalid could not be resolved")
    )
