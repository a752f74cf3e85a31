"""``fhir-cm identify --ndjson``: an export delivered as files, screened, ranked and enrolled; bad input
stops the run with its file and line, and nothing is taken from it."""

from __future__ import annotations

import datetime as dt
import getpass
import json
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.store import count_candidates, list_audit, list_outbox, open_store
from tests.servers import RunningServer

from .population import PROFILES, population

SERVER = "https://ehr.example.org/fhir"


def write_export(directory: Path, prefix: str, per_profile: int) -> dict[str, set[str]]:
    """NDJSON files by type, as a Bulk export leaves them; the expected candidates."""
    directory.mkdir(parents=True, exist_ok=True)
    files: dict[str, Any] = {}
    expected: dict[str, set[str]] = {}
    try:
        for pid, profile, resources in population(prefix, per_profile, dt.date.today()):
            if PROFILES[profile]:
                expected[pid] = set(PROFILES[profile])
            for r in resources:
                handle = files.get(r["resourceType"])
                if handle is None:
                    handle = files[r["resourceType"]] = (directory / f"{r['resourceType']}.ndjson").open("wb")
                handle.write(orjson.dumps(r) + b"\n")
    finally:
        for handle in files.values():
            handle.close()
    return expected


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "FHIR_CM_FHIR_BASE": SERVER}


def run(env: dict[str, str], *args: str) -> Any:
    return CliRunner().invoke(app, ["identify", *args], env=env)


def test_files_are_screened_ranked_and_the_best_enrolled(tmp_path: Path, env: dict[str, str]) -> None:
    expected = write_export(tmp_path / "export", "cli", 3)
    result = run(env, "--ndjson", str(tmp_path / "export"), "--json", "--top", "1000", "--enrol", "4")
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["run"]["source"] == "files" and payload["run"]["patients"] == 3 * len(PROFILES)
    found = {c["patient_id"]: {r["reason"] for r in c["reasons"]} for c in payload["candidates"]}
    assert found == expected
    enrolled = payload["enrolled"]["enrolled"]
    best = sorted(payload["candidates"], key=lambda c: (-c["score"], c["patient_id"]))[:4]
    assert [e["patient_id"] for e in enrolled] == [c["patient_id"] for c in best]
    with open_store(env["FHIR_CM_DATABASE_URL"]) as store, store.session(read_only=True) as s:
        assert {i.case_id for i in list_outbox(s)} == {e["case_id"] for e in enrolled}
        audit = list_audit(s)
    assert {(a.principal, a.action, a.case_id) for a in audit} == {
        (f"cli:{getpass.getuser()}", "enrol", e["case_id"]) for e in enrolled
    }

    listed = run(env, "--ndjson", str(tmp_path / "export"), "--top", "3")
    assert listed.exit_code == 0, listed.output
    assert "4 more already in an open case" in listed.output
    assert len(listed.stdout.strip().splitlines()) == 3


def test_files_saved_with_a_byte_order_mark_are_read(tmp_path: Path, env: dict[str, str]) -> None:
    """Windows tools start UTF-8 files with one; it is no part of the first resource."""
    expected = write_export(tmp_path / "export", "bom", 1)
    for path in (tmp_path / "export").iterdir():
        path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    result = run(env, "--ndjson", str(tmp_path / "export"), "--json", "--top", "1000")
    assert result.exit_code == 0, result.output
    assert {c["patient_id"] for c in json.loads(result.stdout)["candidates"]} == set(expected)


def test_a_line_that_is_not_a_resource_stops_the_run_naming_file_and_line(tmp_path: Path, env: dict[str, str]) -> None:
    write_export(tmp_path / "export", "bad", 1)
    with (tmp_path / "export" / "Condition.ndjson").open("ab") as handle:
        handle.write(b'{"resourceType": "Condition", "id": "ok"}\n{not json\n')
    result = run(env, "--ndjson", str(tmp_path / "export"), "--json")
    assert result.exit_code == 1
    assert "Condition.ndjson: line" in result.output and "is not JSON" in result.output
    with open_store(env["FHIR_CM_DATABASE_URL"]) as store, store.session(read_only=True) as s:
        assert count_candidates(s, SERVER) == 0  # nothing ranked from a half-read export


def test_usage_errors_say_what_is_wrong(tmp_path: Path, env: dict[str, str]) -> None:
    missing = run(env, "--ndjson", str(tmp_path / "nowhere.ndjson"))
    assert missing.exit_code == 1 and "no NDJSON file to read" in missing.output
    programme = run(env, "--programme", "astrology")
    assert programme.exit_code == 2 and "unknown programme 'astrology'" in programme.output
    no_server = run({"FHIR_CM_DATABASE_URL": env["FHIR_CM_DATABASE_URL"]}, "--ndjson", str(tmp_path))
    assert no_server.exit_code == 2 and "no FHIR base URL" in no_server.output


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--full", "--since", "2026-01-01T00:00:00Z"], "--since and --full"),
        (["--ndjson", "x.ndjson", "--group", "g1"], "--ndjson reads the files given"),
        (["--ndjson", "x.ndjson", "--full"], "--ndjson reads the files given"),
        (["--ndjson", "x.ndjson", "--search"], "--ndjson reads the files given"),
    ],
)
def test_options_that_contradict_each_other_are_a_usage_error(env: dict[str, str], args: list[str], said: str) -> None:
    """``--full --since T`` read only what changed since T (the --full dropped without a word), and
    ``--ndjson`` dropped a ``--group``, ``--since``, ``--full`` or ``--search`` the same way: the run
    reported was not the one asked for."""
    result = run(env, *args)
    assert result.exit_code == 2, result.output
    assert said in result.output


@pytest.mark.parametrize("group", ["Group/abc", "abc/$export?_type=Patient", "g" * 65, ""])
def test_a_group_that_is_no_fhir_id_is_a_usage_error(env: dict[str, str], group: str) -> None:
    """A reference (``Group/abc``) where the id goes is the likeliest slip: it went into the export's
    URL as it was (``Group/Group/abc/$export``), the server's 404 read as "no $export" — or, for
    the Group read that tells them apart, a ValueError's traceback."""
    result = run(env, "--group", group)
    assert result.exit_code == 2, result.output
    assert "--group takes a Group's id" in result.output and "Traceback" not in result.output


@pytest.mark.server
def test_the_servers_export_status_is_a_progress_line_that_says_what_it_is(
    tmp_path: Path, sekmet: RunningServer
) -> None:
    """sekmet's $export answers its status polls with ``X-Progress: writing``: a bare "writing" among the
    progress lines said nothing of what was being written; it is named as the server's export status,
    on stderr with the rest, and stdout holds only the candidates."""
    env = {"FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'store.db'}", "FHIR_CM_FHIR_BASE": sekmet.base_url}

    result = run(env)

    assert result.exit_code == 0, result.output
    # stdout holds candidate lines only (the shared server may hold other tests' patients)
    assert not [line for line in result.stdout.splitlines() if line.startswith(" ") or "export" in line]
    progress = result.stderr.splitlines()
    assert "  writing" not in progress, progress
    statuses = [line for line in progress if line.startswith("  the server's export: ")]
    assert statuses and len(statuses) == len(set(statuses)), progress  # each status once, not at every poll
