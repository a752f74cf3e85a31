"""`fhir-cm quarantine`: why resources were set aside, read on the command line, and dismissing one."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.store import add_quarantine, list_audit, open_store

runner = CliRunner()
T0 = dt.datetime(2024, 5, 1, 12, 0, tzinfo=dt.UTC)
HAPI = "http://hapi.example/fhir"


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'q.db'}"
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", url)
    with open_store(url) as store, store.session() as s:
        goal = {"resourceType": "Goal", "id": "g1", "meta": {"versionId": "3"}, "note": [{"text": "Jane Doe"}]}
        add_quarantine(s, source=HAPI, raw=goal, reason="lifecycleStatus has no counterpart", now=T0)
        add_quarantine(s, source=HAPI, raw=b'{"oops', reason="invalid JSON", now=T0 + dt.timedelta(minutes=1))
    return url


def test_the_list_says_what_and_why_without_the_data(db: str) -> None:
    result = runner.invoke(app, ["quarantine"])
    assert result.exit_code == 0
    header, newest, oldest = result.stdout.splitlines()
    assert header.split()[:2] == ["id", "set"]
    assert newest.split()[2] == "?/-" and newest.split()[3].startswith("sha256:") and newest.endswith("invalid JSON")
    assert oldest.split()[1:4] == ["2024-05-01T12:00:00Z", "Goal/g1", "3"]
    assert "Jane Doe" not in result.stdout  # the resource itself only with --json
    (goal,) = [
        json.loads(line) for line in runner.invoke(app, ["quarantine", "--json", "--type", "Goal"]).stdout.splitlines()
    ]
    assert (goal["server_id"], goal["version"]) == ("g1", "3") and "Jane Doe" in goal["raw"]


def test_dismiss_takes_an_entry_off_the_list_and_is_audited(db: str) -> None:
    listed = [json.loads(line) for line in runner.invoke(app, ["quarantine", "--json"]).stdout.splitlines()]
    entry = listed[-1]["id"]
    done = runner.invoke(app, ["quarantine", "dismiss", str(entry)])
    assert done.exit_code == 0 and f"entry {entry} dismissed" in done.stderr
    after = [json.loads(line)["id"] for line in runner.invoke(app, ["quarantine", "--json"]).stdout.splitlines()]
    gone = [
        json.loads(line) for line in runner.invoke(app, ["quarantine", "--json", "--dismissed"]).stdout.splitlines()
    ]
    assert entry not in after and [q["id"] for q in gone] == [entry]
    assert gone[0]["dismissed_by"].startswith("cli:")
    with open_store(db) as store, store.session(read_only=True) as s:
        rows = [e for e in list_audit(s, limit=10) if e.action == "quarantine-dismiss"]
    assert [(e.principal, e.detail) for e in rows] == [(gone[0]["dismissed_by"], f"entry:{entry}")]
    missing = runner.invoke(app, ["quarantine", "dismiss", "999"])
    assert missing.exit_code == 1 and "no quarantine entry 999" in missing.stderr
