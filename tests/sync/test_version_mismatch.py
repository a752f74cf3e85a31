"""FHIR_CM_FHIR_VERSION set to the release the server does not speak: an R4 server while R5 is
configured, HAPI R5 while R4 is. The job stops before it sends or takes in anything, with one line
naming the setting, the server's release and the value to set; nothing is written or quarantined."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import list_quarantine, open_store
from fhir_cm.synthetic import generate_cases
from tests.servers import RunningServer
from tests.sync.server_state import server_state

pytestmark = pytest.mark.server


def _env(tmp_path: Path, base: str, system: str, version: str, store: str = "cli.db") -> dict[str, str]:
    return {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / store}",
        "FHIR_CM_IDENTIFIER_SYSTEM": system,
        "FHIR_CM_FHIR_BASE": base,
        "FHIR_CM_FHIR_VERSION": version,
    }


async def _counts(base: str, system: str) -> Counter[tuple[str, str]]:
    async with AsyncFhirClient(base, enforce_capabilities=False) as raw:
        return (await server_state(raw, system)).counts


def _cases_file(tmp_path: Path, seed: int) -> Path:
    (case,) = generate_cases(1, seed=seed)
    file = tmp_path / "cases.jsonl"
    file.write_text(case.model_dump_json() + "\n")
    return file


def test_r5_configured_for_an_r4_server_stops_push_and_pull_before_any_write(
    tmp_path: Path, fhir_server: str, system: str
) -> None:
    file = _cases_file(tmp_path, seed=71)
    runner = CliRunner()
    told = "FHIR_CM_FHIR_VERSION is R5, but"

    refused = runner.invoke(app, ["push", str(file)], env=_env(tmp_path, fhir_server, system, "R5"))
    assert refused.exit_code == 1, refused.output
    assert told in refused.stderr and "(R4): set it to R4, or to auto" in refused.stderr
    assert asyncio.run(_counts(fhir_server, system)) == {}  # not even the push's Device

    # The case on the server (pushed as auto speaks), then pulled with R5 configured into a new store.
    since = (dt.datetime.now(dt.UTC) - dt.timedelta(seconds=5)).isoformat()
    pushed = runner.invoke(app, ["push", str(file)], env=_env(tmp_path, fhir_server, system, "auto"))
    assert pushed.exit_code == 0, pushed.output
    pulled = runner.invoke(app, ["pull", "--since", since], env=_env(tmp_path, fhir_server, system, "R5", "pull.db"))
    assert pulled.exit_code == 1, pulled.output
    assert told in pulled.stderr
    with open_store(f"sqlite:///{tmp_path / 'pull.db'}") as store, store.session(read_only=True) as s:
        assert list_quarantine(s) == []


def test_r4_configured_for_hapi_r5_stops_the_push(tmp_path: Path, hapi_r5: RunningServer, system: str) -> None:
    file = _cases_file(tmp_path, seed=72)
    env = _env(tmp_path, hapi_r5.base_url, system, "R4")
    refused = CliRunner().invoke(app, ["push", str(file)], env=env)
    assert refused.exit_code == 1, refused.output
    assert "FHIR_CM_FHIR_VERSION is R4, but" in refused.stderr and "(R5): set it to R5" in refused.stderr
