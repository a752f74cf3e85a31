"""The screening panels a hospital lists in ``eligibility-rules.json`` are the ones the patient-view
service asks the EHR for: its ``screens`` prefetch takes them from the rules, and a template that lists
Observation codes itself but leaves a panel out is refused when the app starts, naming the panel."""

from __future__ import annotations

import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from fhir_cm.api import create_app
from fhir_cm.cds import CdsConfigError
from fhir_cm.cds import _services as services_module
from fhir_cm.config import Settings
from fhir_cm.identify import _rules as rules_module
from fhir_cm.store import Store
from tests.identify.population import patient, screen

from .conftest import BASE, TODAY, Signer
from .test_cds_fetch import _seed
from .test_cds_hooks import PV, call

HOUSING = "http://loinc.org|71802-3"


@pytest.fixture
def mappings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the shipped rules and services, read instead of them (the caches cleared around)."""
    shipped = rules_module.mappings_dir()
    for name in (rules_module.RULES_FILE, "cds-hooks.json"):
        shutil.copy(shipped / name, tmp_path / name)
    rules = json.loads((tmp_path / rules_module.RULES_FILE).read_text())
    rules["screens"]["panels"][HOUSING] = "housing status"
    (tmp_path / rules_module.RULES_FILE).write_text(json.dumps(rules))
    monkeypatch.setattr(rules_module, "mappings_dir", lambda: tmp_path)
    monkeypatch.setattr(services_module, "mappings_dir", lambda: tmp_path)
    rules_module.load_rules.cache_clear()
    services_module.settings_of.cache_clear()
    yield tmp_path
    rules_module.load_rules.cache_clear()
    services_module.settings_of.cache_clear()


@pytest.mark.server
def test_a_panel_added_to_the_rules_is_prefetched_and_read_from_the_ehrs_server(
    mappings: Path, cds_store: Store, cds_settings: Settings, signer: Signer, fhir_server: str
) -> None:
    pid = f"cds-{uuid.uuid4().hex[:10]}"
    housing = screen(pid, TODAY, positive=True, panel="71802-3", rid=f"{pid}-housing")
    _seed(fhir_server, [patient(pid), housing])
    with TestClient(create_app(cds_settings, store=cds_store, clock=lambda: TODAY), base_url=BASE) as client:
        found = client.get("/cds-services", headers=signer.headers("/cds-services"))
        assert found.status_code == 200, found.text
        [pv] = [s for s in found.json()["services"] if s["id"] == "fhir-cm-patient-view"]
        codes = pv["prefetch"]["screens"].partition("&code=")[2].split(",")
        # The panels, then the questions (an answer recorded with no panel is a screen too), each once.
        assert codes[:3] == ["http://loinc.org|96777-8", "http://loinc.org|93025-5", HOUSING]
        assert "http://loinc.org|93030-5" in codes[3:] and len(codes) == len(set(codes))

        body = call(pid)  # nothing prefetched: the service reads by its own templates
        body["fhirServer"] = fhir_server
        body["fhirAuthorization"] = {"access_token": "ehr-token-123", "token_type": "Bearer", "expires_in": 300}
        r = client.post(PV, json=body, headers=signer.headers(PV))
    assert r.status_code == 200, r.text
    [card] = r.json()["cards"]
    assert "a positive social-needs screen (housing status)" in card["detail"]


def test_a_screens_template_leaving_out_a_panel_of_the_rules_is_refused_at_start(
    mappings: Path, cds_store: Store, cds_settings: Settings
) -> None:
    path = mappings / "cds-hooks.json"
    hooks = json.loads(path.read_text())
    prefetch = hooks["services"][0]["prefetch"]
    prefetch["screens"] = "Observation?patient={{context.patientId}}&code=http://loinc.org|96777-8,93025-5"
    path.write_text(json.dumps(hooks))
    with pytest.raises(CdsConfigError, match=r"'screens' prefetch of fhir-cm-patient-view leaves out .*71802-3"):
        create_app(cds_settings, store=cds_store, clock=lambda: TODAY)
    services_module.settings_of.cache_clear()
    prefetch["screens"] += ",71802-3"  # a code without its system takes in the panel of that code
    path.write_text(json.dumps(hooks))
    create_app(cds_settings, store=cds_store, clock=lambda: TODAY)
