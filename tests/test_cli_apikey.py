"""`fhir-cm apikey create|list|revoke`: the key once on stdout, hashed in the store, revocable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.store import authenticate_api_key, open_store

runner = CliRunner()


@pytest.fixture
def db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    url = f"sqlite:///{tmp_path / 'keys.db'}"
    monkeypatch.setenv("FHIR_CM_DATABASE_URL", url)
    return url


def test_create_prints_only_the_key_on_stdout_and_it_works(db: str) -> None:
    result = runner.invoke(app, ["apikey", "create", "--name", "Ward 3", "--role", "case-manager", "--practitioner", "cm-1"])
    assert result.exit_code == 0, result.stderr
    key = result.stdout.strip()
    assert key.startswith("fcm_") and "\n" not in key
    assert "not shown again" in result.stderr
    with open_store(db) as store, store.session() as s:
        found = authenticate_api_key(s, key)
    assert found is not None and (found.name, found.practitioner_id) == ("Ward 3", "cm-1")


def test_create_json_includes_the_key_and_details(db: str) -> None:
    result = runner.invoke(app, ["apikey", "create", "--name", "sup", "--role", "supervisor", "--programme", "rehabilitation", "--json"])
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
