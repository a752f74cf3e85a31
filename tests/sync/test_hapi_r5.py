"""Push, pull and export against HAPI FHIR JPA in R5 (5.0.0): the same guarantees as on R4.

The R4 suite runs against sekmet and HAPI R4 through the parametrised ``fhir_server`` fixture; R5
needs a server of its own, so these tests ask for ``hapi_r5`` directly.
"""

from __future__ import annotations

import json
from collections import Counter
import uuid
from pathlib import Path

import pytest
from typer.testing import CliRunner

from fhir_cm.cli import app
from fhir_cm.config import Settings
from fhir_cm.domain import Case
from fhir_cm.fhir import AsyncFhirClient
from fhir_cm.store import get_case, open_store
from fhir_cm.sync import pull, push_cases
from fhir_cm.synthetic import generate_cases
from tests.servers import RunningServer
from tests.sync.seeding import seed_parties
from tests.sync.server_state import expected, server_state

pytestmark = pytest.mark.server

N = 3


@pytest.fixture
def r5(hapi_r5: RunningServer) -> str:
    return hapi_r5.base_url


def settings_for(path: Path, base: str, system: str) -> Settings:
    return Settings(database_url=f"sqlite:///{path}", fhir_base=base, identifier_system=system, fhir_version="auto")


async def test_push_pull_and_export_in_r5(tmp_path: Path, r5: str) -> None:
    system = f"urn:fhir-cm:test:{uuid.uuid4().hex}"
    cases: list[Case] = list(generate_cases(N, seed=57))
    async with AsyncFhirClient(r5, enforce_capabilities=False) as raw:
        assert str(await raw.release()) == "R5"
        for case in cases:  # the EHR's patients, practitioners and organisations, under their own ids
            await seed_parties(raw, case)

        # Push: every resource once, in R5 shapes; a second push changes nothing.
        pushing = settings_for(tmp_path / "push.db", r5, system)
        with open_store(pushing.database_url) as store:
            async with AsyncFhirClient(r5) as client:
                first = await push_cases(store, client, pushing, cases)
                assert first.ok, first.failures
                state = await server_state(raw, system)
                # The patients are the EHR's (seeded under their ids, without our identifier).
                assert state.counts == +Counter({k: n for k, n in expected(cases, system).items() if k[0] != "Patient"})
                patients = [f"Patient/{c.patient.id}" for c in cases]
                assert state.dangling(elsewhere=patients) == []
                for reference in patients:
                    assert (await raw.read(*reference.split("/")))["meta"]["versionId"] == "1"  # the EHR's, untouched
                again = await push_cases(store, client, pushing, cases)
                assert (again.created, again.updated, again.failed) == (0, 0, 0)
                assert (await server_state(raw, system)).versions() == state.versions()
        episode = next(r[0] for (t, _), r in state.resources.items() if t == "EpisodeOfCare")
        if any(c.eligibility for c in cases):
            # R5 has EpisodeOfCare.reason; R4 carries eligibility in an extension instead.
            assert any("reason" in r[0] for (t, _), r in state.resources.items() if t == "EpisodeOfCare")
        assert episode["meta"]["versionId"] == "1"

        # Pull into a brand-new store: the cases come back as they were.
        pulling = settings_for(tmp_path / "pull.db", r5, system)
        with open_store(pulling.database_url) as store:
            report = await pull(store, raw, pulling)
            assert (report.new_cases, report.quarantined, report.conflicts) == (N, 0, 0)
            with store.session(read_only=True) as s:
                for case in cases:
                    assert get_case(s, case.id) == case

    # Export the pulled store as R5: one collection Bundle holding every resource of the cases.
    out = tmp_path / "export.json"
    result = CliRunner().invoke(
        app, ["export", "--fhir-version", "R5", "--out", str(out)], env={"FHIR_CM_DATABASE_URL": pulling.database_url}
    )
    assert result.exit_code == 0, result.output
    bundle = json.loads(out.read_text())
    exported = [e["resource"] for e in bundle["entry"]]
    ours = [r for r in exported if any(i.get("system") == system for i in r.get("identifier") or ())]
    assert len(ours) == sum(n for (t, _), n in expected(cases, system).items() if t != "Patient")

    from fhir.resources.bundle import Bundle  # R5 models: the export is valid R5

    Bundle.model_validate(bundle)
