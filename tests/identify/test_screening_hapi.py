"""``fhir-cm identify`` against the real HAPI server over Bulk Data ``$export`` of a Group: exactly the
eligible patients of a seeded population, with the right reasons; the paged-search fallback finds the
same; a second run exports only what changed since the first's ``transactionTime``."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.fhir import AsyncFhirClient

from .population import PROFILES, population, screen, transaction

pytestmark = pytest.mark.server
TODAY = dt.date.today()
PER_PROFILE = 20  # 13 profiles: 260 patients


def identify(env: dict[str, str], *args: str) -> dict[str, Any]:
    result = CliRunner().invoke(app, ["identify", "--json", "--top", "100000", *args], env=env)
    assert result.exit_code == 0, result.output
    return dict(json.loads(result.stdout))


def ours(payload: dict[str, Any], prefix: str) -> dict[str, set[str]]:
    return {
        c["patient_id"]: {r["reason"] for r in c["reasons"]}
        for c in payload["candidates"]
        if c["patient_id"].startswith(prefix)
    }


async def _write(base: str, resources: list[dict[str, Any]]) -> None:
    async with AsyncFhirClient(base, enforce_capabilities=False) as fhir:
        for start in range(0, len(resources), 500):
            await fhir.transaction(transaction(resources[start : start + 500])["entry"])


def test_identify_over_export_then_search_then_only_the_changes(hapi_r4: Any, tmp_path: Path) -> None:
    prefix = f"hscr-{uuid.uuid4().hex[:8]}"
    seeded = list(population(prefix, PER_PROFILE, TODAY))
    expected = {pid: set(PROFILES[profile]) for pid, profile, _ in seeded if PROFILES[profile]}
    group = f"{prefix}-group"
    members = [{"entity": {"reference": f"Patient/{pid}"}} for pid, _, _ in seeded]
    the_group = {"resourceType": "Group", "id": group, "type": "person", "actual": True, "member": members}
    asyncio.run(_write(hapi_r4.base_url, [*(r for _, _, rs in seeded for r in rs), the_group]))

    env = {
        "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'export.db'}",
        "FHIR_CM_FHIR_BASE": hapi_r4.base_url,
        "FHIR_CM_BULK_MAX_RETRY_AFTER": "0.25",  # HAPI asks for 120 s; its test server's jobs take about a second
    }
    first = identify(env, "--group", group)
    assert first["run"]["source"] == "export" and first["run"]["scope"] == f"Group/{group}"
    assert first["run"]["patients"] == len(seeded)  # the Group's members, no one else
    assert ours(first, prefix) == expected
    assert len(expected) == PER_PROFILE * sum(1 for r in PROFILES.values() if r)

    searched = identify({**env, "FHIR_CM_DATABASE_URL": f"sqlite:///{tmp_path / 'search.db'}"}, "--search", "--full")
    assert searched["run"]["source"] == "search"
    assert ours(searched, prefix) == expected

    flipped = f"{prefix}-negative-screen-0"
    asyncio.run(
        _write(hapi_r4.base_url, [screen(flipped, TODAY - dt.timedelta(days=2), positive=True, rid=f"{flipped}-r1")])
    )
    second = identify(env, "--group", group)
    assert second["run"]["since"] == first["run"]["transaction_time"]
    assert second["run"]["read"] == {"Observation": 1}  # only the change was exported
    assert second["run"]["patients"] == len(seeded)  # every member ranked again, from the store
    assert ours(second, prefix) == {**expected, flipped: {"social-needs"}}
