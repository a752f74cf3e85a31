"""`fhir-cm apikey create|list|revoke`: the key once on stdout, hashed in the store, revocable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.domain import Case
from fhir_cm.store import authenticate_api_key, open_store, save_case

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", url)
    return url


def _store_case(db: str, case_id: str, manager: str, programme: str = "health-care", **fields: object) -> None:
    case = Case.model_validate(
        {
            "id": case_id,
            "programme": programme,
            "period": {"start": "2025-01-10"},
            "patient": {"kind": "patient", "id": f"p-{case_id}"},
            "case_manager": {"kind": "practitioner", "id": manager, "name": "Casey Manager"},
            **fields,
        }
    )
    with open_store(db) as store, store.session() as s:
        save_case(s, case)


def test_create_prints_only_the_key_on_stdout_and_it_works(db: str) -> None:
    _store_case(db, "case-1", "cm-1")
    result = runner.invoke(
        app, ["apikey", "create", "--name", "Ward 3", "--role", "case-manager", "--practitioner", "cm-1"]
    )
    assert result.exit_code == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("fcm_") and "\n" not in key
    assert "not shown again" in result.stderr
    with open_store(db) as store, store.session() as s:
        found = authenticate_api_key(s, key)
    assert found is not None and (found.name, found.practitioner_id) == ("Ward 3", "cm-1")


def test_create_json_includes_the_key_and_details(db: str) -> None:
    result = runner.invoke(
        app,
        [
            "apikey",
            "create",
            "--name",
            "sup",
            "--role",
            "supervisor",
            "--programme",
            "rehabilitation",
            "--json",
            "--force",
        ],
    )
    body = json.loads(result.stdout)
    assert (body["role"], body["programme"]) == ("supervisor", "rehabilitation")
    assert body["key"].startswith(f"fcm_{body['key_id']}_")


@pytest.mark.parametrize(
    "args",
    [
        ["--name", "x", "--role", "admin"],
        ["--name", "x", "--role", "case-manager"],
        ["--name", "x", "--role", "supervisor", "--programme", "gardening"],
        ["--name", " ", "--role", "service"],
    ],
)
def test_create_refuses_bad_options_with_one_line(db: str, args: list[str]) -> None:
    result = runner.invoke(app, ["apikey", "create", *args])
    assert result.exit_code == 2
    assert result.stdout == ""
    assert len(result.stderr.strip().splitlines()) == 1


def test_list_and_revoke(db: str) -> None:
    key = runner.invoke(app, ["apikey", "create", "--name", "svc", "--role", "service"]).stdout.strip()
    key_id = key.split("_")[1]
    listed = json.loads(runner.invoke(app, ["apikey", "list", "--json"]).stdout)
    assert [(k["key_id"], k["revoked_at"]) for k in listed] == [(key_id, None)]
    assert "key" not in listed[0] and key not in runner.invoke(app, ["apikey", "list"]).stdout
    assert runner.invoke(app, ["apikey", "revoke", key_id]).exit_code == 0
    assert json.loads(runner.invoke(app, ["apikey", "list", "--json", "--active"]).stdout) == []
    with open_store(db) as store, store.session() as s:
        assert authenticate_api_key(s, key) is None
    missing = runner.invoke(app, ["apikey", "revoke", "0123456789abcdef"])
    assert missing.exit_code == 1 and "no API key" in missing.stderr


def test_a_practitioner_no_case_names_is_refused_with_the_full_id_suggested(db: str) -> None:
    manager = "3f2a9c0e5b7d4e1f8a6c2b9d0e4f7a1c"
    _store_case(db, "case-1", manager)
    result = runner.invoke(
        app, ["apikey", "create", "--name", "x", "--role", "case-manager", "--practitioner", manager[:8]]
    )
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.strip().splitlines()
    assert f"did you mean {manager}?" in line and "--force" in line
    ok = runner.invoke(app, ["apikey", "create", "--name", "x", "--role", "case-manager", "--practitioner", manager])
    assert ok.exit_code == 0 and ok.stdout.startswith("fcm_")


def test_a_practitioner_on_a_care_team_is_known(db: str) -> None:
    _store_case(
        db, "case-1", "cm-1", team=[{"id": "m1", "role": "nurse", "party": {"kind": "practitioner", "id": "nurse-7"}}]
    )
    result = runner.invoke(
        app, ["apikey", "create", "--name", "x", "--role", "case-manager", "--practitioner", "nurse-7"]
    )
    assert result.exit_code == 0, result.stderr


def test_a_programme_no_case_is_in_is_refused_unless_forced(db: str) -> None:
    _store_case(db, "case-1", "cm-1", programme="health-care")
    refused = runner.invoke(
        app, ["apikey", "create", "--name", "x", "--role", "supervisor", "--programme", "rehabilitation"]
    )
    assert refused.exit_code == 1 and refused.stdout == ""
    (line,) = refused.stderr.strip().splitlines()
    assert "rehabilitation" in line and "health-care" in line
    assert (
        runner.invoke(
            app, ["apikey", "create", "--name", "x", "--role", "supervisor", "--programme", "health-care"]
        ).exit_code
        == 0
    )
    forced = runner.invoke(
        app, ["apikey", "create", "--name", "x", "--role", "supervisor", "--programme", "rehabilitation", "--force"]
    )
    assert forced.exit_code == 0 and forced.stdout.startswith("fcm_")
    empty = runner.invoke(
        app, ["apikey", "create", "--name", "x", "--role", "case-manager", "--practitioner", "cm-9", "--force"]
    )
    assert empty.exit_code == 0


def test_revoking_by_the_key_itself_works_and_never_echoes_it(db: str) -> None:
    """Whoever holds a key (or finds one where it leaked) revokes it by pasting it; an error shows no secret."""
    key = runner.invoke(app, ["apikey", "create", "--name", "svc", "--role", "service"]).stdout.strip()
    revoked = runner.invoke(app, ["apikey", "revoke", key])
    assert revoked.exit_code == 0, revoked.stderr
    assert key.split("_", 2)[2] not in revoked.stdout + revoked.stderr
    with open_store(db) as store, store.session() as s:
        assert authenticate_api_key(s, key) is None
    other = "fcm_0123456789abcdef_" + "S" * 43  # a key this store never issued
    missing = runner.invoke(app, ["apikey", "revoke", other])
    assert missing.exit_code == 1 and "no API key 0123456789abcdef" in missing.stderr
    assert "SSSS" not in missing.stdout + missing.stderr
    mistyped = runner.invoke(app, ["apikey", "revoke", "fcm_x_secret-part"])
    assert mistyped.exit_code == 2 and "secret-part" not in mistyped.stderr
